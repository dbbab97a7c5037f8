//! The `docker run` script reader behind `check --run-script`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = flowerbed::check::script::parse(text, std::path::Path::new("/nonexistent/workdir"));
    }
});

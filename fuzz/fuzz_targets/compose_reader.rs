//! The compose reader behind `check --compose`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(specs) = flowerbed::check::compose::parse(text, std::path::Path::new("/nonexistent/base")) {
            for spec in &specs {
                for flag in ["--ssl-keyfile", "--database", "--superlink"] {
                    if let Some(value) = spec.flag_value(flag) {
                        let _ = spec.host_path(value);
                    }
                }
            }
        }
    }
});

//! Name classification behind `--name`: parse, print, parse again must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = flowerbed::tls::SubjectName::parse(text) {
            let again = flowerbed::tls::SubjectName::parse(&name.to_string()).expect("a printed name parses");
            assert_eq!(name, again);
            assert!(name.covers(&name) || name.to_string().starts_with("*."));
        }
    }
});

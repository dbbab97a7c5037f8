//! PEM/DER reading and inspection, as `certs inspect` and `certs verify` use them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blocks) = flowerbed::tls::material::parse_blocks(data) {
        for block in blocks {
            let _ =
                flowerbed::tls::inspect::inspect_block(std::path::Path::new("fuzz"), block.kind, &block.der);
        }
    }
});

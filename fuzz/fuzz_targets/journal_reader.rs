//! The ownership journal reader behind `undo` and `journal show`.
#![no_main]

use flowerbed::ownership::journal::{self, Decoded, Frame, FrameReader, MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The frame decoder on raw bytes: a decoded record frame re-encodes to the same bytes
    // (session and end frames hold JSON, whose spelling need not round-trip).
    if let Decoded::Frame(frame @ Frame::Records(_), used) = journal::decode_frame(data) {
        assert_eq!(journal::encode_frame(&frame), &data[..used]);
    }
    // A whole journal, as given and behind a valid header (so the frames get exercised
    // even when the input does not start with the magic).
    let mut with_header = MAGIC.to_vec();
    with_header.extend_from_slice(data);
    for input in [data, &with_header[..]] {
        let parsed = journal::parse(input);
        // The streaming reader must agree with the in-memory parser.
        let streamed = FrameReader::new(input).and_then(|mut reader| {
            let mut frames = Vec::new();
            while let Some(frame) = reader.next_frame()? {
                frames.push(frame);
            }
            Ok((frames, reader.tail().cloned().expect("tail known at the end")))
        });
        match (&parsed, &streamed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => panic!("parse and FrameReader disagree: {parsed:?} vs {streamed:?}"),
        }
    }
});

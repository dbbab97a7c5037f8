//! The ownership journal reader behind `undo` and `journal show`.
#![no_main]

use flowerbed::ownership::journal::{self, Decoded, Frame, FrameReader, MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The frame decoder on raw bytes: a decoded records (or capabilities) frame, encoded
    // again (compact, as this version writes), decodes to the same records. The bytes may
    // differ: a version 1 frame becomes a compact one, and a compact one may have spelled a
    // field out where the encoder marks it as repeated.
    if let Decoded::Frame(frame @ (Frame::Records(_) | Frame::Capabilities(_)), _) = journal::decode_frame(data) {
        let again = journal::encode_frame(&frame);
        assert_eq!(journal::decode_frame(&again), Decoded::Frame(frame, again.len()));
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

//! Capability frames: the `security.capability` attribute of files `own` changed, which a
//! change of owner clears.

use super::records::{ByteCursor, put_varint};
use super::{MAX_CAPABILITY, MAX_FRAME_RECORDS};

/// A file's capability attribute before `own` changed the file's owner (which cleared it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub dev: u64,
    pub ino: u64,
    /// Relative to the journal's root, raw bytes (as in [`super::Record`]).
    pub path: Vec<u8>,
    /// The attribute's raw value (`struct vfs_cap_data`, at most [`MAX_CAPABILITY`] bytes).
    pub value: Vec<u8>,
}

/// Each capability takes at least: device, inode, path length, value length.
const CAPABILITY_MIN: usize = 4;

/// Append one capability to a frame's payload: device, inode, path length, path, value
/// length, value (numbers unsigned LEB128).
pub(crate) fn push_capability(out: &mut Vec<u8>, dev: u64, ino: u64, path: &[u8], value: &[u8]) {
    put_varint(out, dev);
    put_varint(out, ino);
    put_varint(out, path.len() as u64);
    out.extend_from_slice(path);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

pub(crate) fn encode_capabilities(capabilities: &[Capability]) -> Vec<u8> {
    let mut out = u32::try_from(capabilities.len())
        .expect("capability count")
        .to_le_bytes()
        .to_vec();
    for c in capabilities {
        push_capability(&mut out, c.dev, c.ino, &c.path, &c.value);
    }
    out
}

pub(crate) fn decode_capabilities(payload: &[u8]) -> Result<Vec<Capability>, String> {
    let mut cursor = ByteCursor { bytes: payload };
    let count = cursor.u32()?;
    if count > MAX_FRAME_RECORDS || count as usize > payload.len() / CAPABILITY_MIN {
        return Err(format!("capability count {count} does not fit the frame"));
    }
    let mut out = Vec::with_capacity((count as usize).min(64));
    for _ in 0..count {
        let dev = cursor.varint()?;
        let ino = cursor.varint()?;
        let path_len = cursor.varint_len()?;
        let path = cursor.take(path_len)?.to_vec();
        let value_len = cursor.varint_len()?;
        if value_len == 0 || value_len > MAX_CAPABILITY {
            return Err(format!("capability of {value_len} bytes"));
        }
        let value = cursor.take(value_len)?.to_vec();
        out.push(Capability {
            dev,
            ino,
            path,
            value,
        });
    }
    if !cursor.bytes.is_empty() {
        return Err("trailing bytes after the last capability".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::journal::{
        Decoded, Frame, KIND_CAPABILITIES, decode_frame, encode_frame, frame_of,
    };

    fn capability(path: &[u8]) -> Capability {
        Capability {
            dev: 2049,
            ino: 1_234_567,
            path: path.to_vec(),
            // A version 2 `vfs_cap_data`: cap_net_raw permitted and effective.
            value: vec![1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn capability_frames_round_trip() {
        let caps = vec![capability(b"bin/ping"), capability(b"odd\n\xffname")];
        let frame = encode_frame(&Frame::Capabilities(caps.clone()));
        assert_eq!(frame[0], KIND_CAPABILITIES);
        assert_eq!(
            decode_frame(&frame),
            Decoded::Frame(Frame::Capabilities(caps), frame.len())
        );
    }

    #[test]
    fn the_fuzz_seed_is_a_clean_journal_with_capabilities() {
        let seed = include_bytes!("../../../../fuzz/corpus/journal_reader/seed-own-capabilities");
        let (frames, tail) = crate::ownership::journal::parse(seed).unwrap();
        assert_eq!(tail, crate::ownership::journal::Tail::Clean);
        let Frame::Capabilities(caps) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert_eq!(caps[0].path, b"bin/ping");
        let Frame::Records(records) = &frames[2] else {
            panic!("{frames:?}")
        };
        assert_eq!(
            (records[1].ino, &records[1].path[..]),
            (caps[0].ino, &b"bin/ping"[..])
        );
    }

    #[test]
    fn bad_capability_frames_are_refused() {
        let count = |n: u32| n.to_le_bytes().to_vec();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([count(u32::MAX), vec![0; 8]].concat(), "count"),
            ([count(1), vec![1, 2, 0, 0]].concat(), "0 bytes"),
            ([count(1), vec![1, 2, 0, 0x81, 0x02]].concat(), "257 bytes"),
            ([count(1), vec![1, 2, 0, 3, 1]].concat(), "past the end"),
            ([count(1), vec![1, 2, 0, 1, 1, 9]].concat(), "trailing"),
        ];
        for (payload, reason) in cases {
            match decode_frame(&frame_of(KIND_CAPABILITIES, &payload)) {
                Decoded::Invalid(why) => assert!(why.contains(reason), "{why} / {reason}"),
                other => panic!("{payload:?} decoded as {other:?}"),
            }
        }
    }
}

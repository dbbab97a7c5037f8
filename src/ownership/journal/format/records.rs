//! Records frames: the compact encoding this version writes and version 1's, decoded.

use super::{
    ALL_FLAGS, COMPACT_MIN, MAX_FRAME_PATHS, MAX_FRAME_RECORDS, RECORD_FIXED, Record, RecordRef, SAME_DEV,
    SAME_GID, SAME_MODE, SAME_UID,
};

pub(crate) fn decode_records(payload: &[u8], keep: bool) -> Result<Vec<Record>, String> {
    let mut cursor = ByteCursor { bytes: payload };
    let count = cursor.u32()?;
    // Each record takes at least RECORD_FIXED bytes: a count larger than that is garbage,
    // and checking it first keeps a hostile count from reserving memory.
    if count as usize > payload.len() / RECORD_FIXED {
        return Err(format!("record count {count} does not fit the frame"));
    }
    let mut records = Vec::with_capacity(if keep { count as usize } else { 0 });
    for _ in 0..count {
        let dev = cursor.u64()?;
        let ino = cursor.u64()?;
        let uid = cursor.u32()?;
        let gid = cursor.u32()?;
        let mode = cursor.u32()?;
        let path_len = cursor.u32()? as usize;
        let path = cursor.take(path_len)?;
        if !keep {
            continue;
        }
        let path = path.to_vec();
        records.push(Record {
            dev,
            ino,
            uid,
            gid,
            mode,
            path,
        });
    }
    if !cursor.bytes.is_empty() {
        return Err("trailing bytes after the last record".into());
    }
    Ok(records)
}

pub(crate) fn decode_compact(payload: &[u8], keep: bool) -> Result<Vec<Record>, String> {
    let mut cursor = ByteCursor { bytes: payload };
    let count = cursor.u32()?;
    if count > MAX_FRAME_RECORDS || count as usize > payload.len() / COMPACT_MIN {
        return Err(format!("record count {count} does not fit the frame"));
    }
    let mut records = Vec::with_capacity(if keep { (count as usize).min(4096) } else { 0 });
    let mut previous = Record {
        dev: 0,
        ino: 0,
        uid: 0,
        gid: 0,
        mode: 0,
        path: Vec::new(),
    };
    // Only the lengths are needed to check a frame; the bytes only to keep its records.
    let mut previous_len = 0;
    let mut spelled = 0usize;
    for _ in 0..count {
        let flags = cursor.take(1)?[0];
        if flags & !ALL_FLAGS != 0 {
            return Err(format!("unknown record flags 0x{flags:02x}"));
        }
        previous.ino = previous.ino.wrapping_add(unzigzag(cursor.varint()?));
        if flags & SAME_DEV == 0 {
            previous.dev = cursor.varint()?;
        }
        if flags & SAME_UID == 0 {
            previous.uid = cursor.varint_u32()?;
        }
        if flags & SAME_GID == 0 {
            previous.gid = cursor.varint_u32()?;
        }
        if flags & SAME_MODE == 0 {
            previous.mode = cursor.varint_u32()?;
        }
        let shared = cursor.varint_len()?;
        if shared > previous_len {
            return Err("record shares more of the previous path than it has".into());
        }
        let rest_len = cursor.varint_len()?;
        let rest = cursor.take(rest_len)?;
        previous_len = shared + rest_len;
        spelled = spelled.saturating_add(previous_len);
        if spelled > MAX_FRAME_PATHS {
            return Err("paths add up to more than a frame may hold".into());
        }
        if keep {
            previous.path.truncate(shared);
            previous.path.extend_from_slice(rest);
            records.push(previous.clone());
        }
    }
    if !cursor.bytes.is_empty() {
        return Err("trailing bytes after the last record".into());
    }
    Ok(records)
}

/// A signed difference (as wrapping `u64` arithmetic gives it) in few bytes when small.
fn zigzag(difference: u64) -> u64 {
    // The sign bit, spread over all 64 bits, flips the rest: -1 becomes 1, 1 becomes 2.
    (difference << 1) ^ 0u64.wrapping_sub(difference >> 63)
}

fn unzigzag(encoded: u64) -> u64 {
    (encoded >> 1) ^ 0u64.wrapping_sub(encoded & 1)
}

/// Unsigned LEB128: seven bits per byte, low bits first, the top bit set on all but the last.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value.to_le_bytes()[0] | 0x80);
        value >>= 7;
    }
    out.push(value.to_le_bytes()[0]);
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, len as u64);
}

/// The compact record encoder: what the previous record of the frame was.
#[derive(Debug, Default)]
pub(crate) struct CompactEncoder {
    dev: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    path: Vec<u8>,
}

impl CompactEncoder {
    /// Forget the previous record (keeping the path's buffer).
    pub(crate) fn restart(&mut self) {
        (self.dev, self.ino, self.uid, self.gid, self.mode) = (0, 0, 0, 0, 0);
        self.path.clear();
    }

    pub(crate) fn push(&mut self, record: RecordRef<'_>, out: &mut Vec<u8>) {
        let mut flags = 0;
        for (same, flag) in [
            (record.dev == self.dev, SAME_DEV),
            (record.uid == self.uid, SAME_UID),
            (record.gid == self.gid, SAME_GID),
            (record.mode == self.mode, SAME_MODE),
        ] {
            if same {
                flags |= flag;
            }
        }
        out.push(flags);
        put_varint(out, zigzag(record.ino.wrapping_sub(self.ino)));
        if flags & SAME_DEV == 0 {
            put_varint(out, record.dev);
        }
        for (value, flag) in [
            (record.uid, SAME_UID),
            (record.gid, SAME_GID),
            (record.mode, SAME_MODE),
        ] {
            if flags & flag == 0 {
                put_varint(out, u64::from(value));
            }
        }
        let shared = self
            .path
            .iter()
            .zip(record.path)
            .take_while(|(a, b)| a == b)
            .count();
        let rest = &record.path[shared..];
        put_len(out, shared);
        put_len(out, rest.len());
        out.extend_from_slice(rest);
        self.path.truncate(shared);
        self.path.extend_from_slice(rest);
        (self.dev, self.ino, self.uid, self.gid, self.mode) =
            (record.dev, record.ino, record.uid, record.gid, record.mode);
    }
}

pub(super) struct ByteCursor<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> ByteCursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("record runs past the end of its frame".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// An unsigned LEB128 number (see [`put_varint`]).
    pub(super) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("number over 64 bits".into())
    }
    fn varint_u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.varint()?).map_err(|_| "number over 32 bits".to_string())
    }
    pub(super) fn varint_len(&mut self) -> Result<usize, String> {
        usize::try_from(self.varint()?).map_err(|_| "length too large".to_string())
    }
}

/// The payload of a compact records frame.
pub(crate) fn encode_records(records: &[Record]) -> Vec<u8> {
    let mut out = u32::try_from(records.len())
        .expect("batch count")
        .to_le_bytes()
        .to_vec();
    let mut encoder = CompactEncoder::default();
    for record in records {
        encoder.push(record.borrowed(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::journal::testdata::*;
    use crate::ownership::journal::{
        Decoded, Frame, KIND_COMPACT, RecordBatch, decode_frame, encode_frame, frame_of,
    };

    #[test]
    fn compact_frames_share_what_neighbours_share() {
        // A walk's batch: one folder's files in inode order, same owner and mode.
        let records: Vec<Record> = (0..1_000u64)
            .map(|i| Record {
                dev: 2049,
                ino: 1_000_000 + i * 3,
                uid: 0,
                gid: 0,
                mode: 0o100_644,
                path: format!("g0003/d00317/f{i:03}").into_bytes(),
            })
            .collect();
        let frame = encode_frame(&Frame::Records(records.clone()));
        assert_eq!(frame[0], KIND_COMPACT);
        // About 50 bytes a record in version 1.
        assert!(frame.len() < 8 * records.len(), "{} bytes", frame.len());
        assert_eq!(
            decode_frame(&frame),
            Decoded::Frame(Frame::Records(records), frame.len())
        );
        // The frame a batch seals is the same as `encode_frame` gives.
        let mut batch = RecordBatch::default();
        for _ in 0..2 {
            for record in [record(b""), record(b"a/b"), record(b"a/c")] {
                batch.add(&record);
            }
            let expected = encode_frame(&Frame::Records(vec![record(b""), record(b"a/b"), record(b"a/c")]));
            // Sealing starts the next frame from scratch.
            assert_eq!(batch.seal().into_frame(), expected);
        }
    }

    #[test]
    fn small_inode_steps_take_one_byte_either_way() {
        for (step, encoded) in [
            (0u64, 0u64),
            (u64::MAX, 1),
            (1, 2),
            (u64::MAX - 1, 3),
            (63, 126),
            (0u64.wrapping_sub(64), 127),
        ] {
            assert_eq!(zigzag(step), encoded, "{step}");
            assert_eq!(unzigzag(encoded), step);
        }
        for value in [0, u64::MAX, 1 << 63, (1 << 63) - 1] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }

    #[test]
    fn bad_compact_frames_are_refused() {
        let count = |n: u32| n.to_le_bytes().to_vec();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([count(u32::MAX), vec![0; 8]].concat(), "count"),
            ([count(1), vec![0x10, 0, 0, 0]].concat(), "flags"),
            ([count(1), vec![0x0f, 0, 1, 0]].concat(), "shares more"),
            ([count(1), vec![0x0f, 0, 0, 5, b'a']].concat(), "past the end"),
            ([count(1), vec![0x0f, 0, 0, 1, b'a', 0]].concat(), "trailing"),
            (
                [count(1), vec![0x0d, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]].concat(),
                "32 bits",
            ),
            (
                [
                    count(1),
                    vec![
                        0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0,
                    ],
                ]
                .concat(),
                "64 bits",
            ),
        ];
        for (payload, reason) in cases {
            let frame = frame_of(KIND_COMPACT, &payload);
            match decode_frame(&frame) {
                Decoded::Invalid(why) => assert!(why.contains(reason), "{why} / {reason}"),
                other => panic!("{payload:?} decoded as {other:?}"),
            }
        }
    }

    fn any_record() -> impl proptest::strategy::Strategy<Value = Record> {
        use proptest::prelude::*;
        (
            prop_oneof![Just(7u64), any::<u64>()],
            any::<u64>(),
            prop_oneof![Just(0u32), any::<u32>()],
            prop_oneof![Just(0u32), any::<u32>()],
            prop_oneof![Just(0o100_644u32), any::<u32>()],
            prop_oneof![
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'/')], 0..12),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
        )
            .prop_map(|(dev, ino, uid, gid, mode, path)| Record {
                dev,
                ino,
                uid,
                gid,
                mode,
                path,
            })
    }

    proptest::proptest! {
        #[test]
        fn compact_frames_round_trip(records in proptest::collection::vec(any_record(), 0..40)) {
            let frame = encode_frame(&Frame::Records(records.clone()));
            proptest::prop_assert_eq!(decode_frame(&frame), Decoded::Frame(Frame::Records(records.clone()), frame.len()));
            let mut batch = RecordBatch::default();
            for record in &records {
                batch.add(record);
            }
            if !records.is_empty() {
                proptest::prop_assert_eq!(batch.seal().into_frame(), frame);
            }
        }
    }
}

//! The journal's byte format: pure functions over bytes, so that they can be fuzzed.
//!
//! # Format (version 3; versions 1 and 2 are still read)
//!
//! A journal file starts with the 16-byte [`MAGIC`] (`flowerbed-jrnl` + `\n` + the format
//! version byte), followed by frames:
//!
//! ```text
//! kind: u8 | payload length: u32 LE | payload | CRC-32 (IEEE) of kind+length+payload: u32 LE
//! ```
//!
//! * `S` session start: JSON [`SessionInfo`] (who ran what, on which root, towards which owner).
//! * `C` a batch of records, compact (what this version writes): `count: u32 LE`, then per
//!   record a flags byte (which of dev, uid, gid and mode repeat the previous record's: bits
//!   0 to 3), the inode as the zigzag-encoded difference from the previous record's, the
//!   fields not repeated, then how many leading bytes the path shares with the previous
//!   record's, the length of the rest, and the rest. Numbers are unsigned LEB128. "Previous"
//!   starts from zeros and an empty path in every frame, so each frame stands alone.
//! * `R` a batch of records, as version 1 wrote them (still read): `count: u32 LE`, then per
//!   record `dev: u64, ino: u64, uid: u32, gid: u32, mode: u32, path length: u32` (all LE)
//!   and the path bytes.
//! * `X` (version 3) the capability attributes (`security.capability`) of files the next
//!   records frame lists, which a change of owner clears: `count: u32 LE`, then per file its
//!   device, inode, path length, path, value length and value (numbers unsigned LEB128).
//!   It is written with its records frame, in the same synced write, before it.
//! * `E` session end: JSON [`SessionEnd`].
//!
//! This version appends to a journal of an older version too, after setting its header's
//! version byte to 3: an older flowerbed then refuses the file as a whole, rather than take
//! a frame kind it does not know at its end for a torn write (and cut it off).
//!
//! Paths are relative to the root, raw bytes (names may be invalid UTF-8 or contain
//! newlines), empty for the root itself. A records frame of the walk takes about 5 to 10
//! bytes per entry, against about 50 in version 1: less to write and sync before changes.
//!
//! Frames are only ever appended. Each records frame is flushed and synced before any entry
//! it lists is changed, so after a crash the file is a valid prefix plus, at most, one torn
//! frame at the very end; [`parse`] tolerates exactly that and rejects anything else.
//!
//! Nothing here touches a file: [`FrameReader`] reads from any [`std::io::Read`].

use serde::{Deserialize, Serialize};

mod capabilities;
mod reader;
mod records;

pub use self::capabilities::Capability;
pub(crate) use self::capabilities::push_capability;
use self::capabilities::{decode_capabilities, encode_capabilities};
pub use self::reader::FrameReader;
pub(crate) use self::records::CompactEncoder;
use self::records::{decode_compact, decode_records, encode_records};

/// The first bytes of every journal file this build creates; the last byte is the format
/// version.
pub const MAGIC: &[u8; 16] = b"flowerbed-jrnl\n\x03";
/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 3;
/// The oldest format version this build reads (and appends to, with compact frames).
pub const OLDEST_VERSION: u8 = 1;
/// No frame is larger than this; a larger length means corruption, not a big batch.
pub const MAX_PAYLOAD: u32 = 64 << 20;

pub(crate) const KIND_SESSION: u8 = b'S';
/// Records as version 1 wrote them.
pub(crate) const KIND_RECORDS: u8 = b'R';
/// Records, compact.
pub(crate) const KIND_COMPACT: u8 = b'C';
/// File capabilities (version 3).
pub(crate) const KIND_CAPABILITIES: u8 = b'X';
pub(crate) const KIND_END: u8 = b'E';
/// The largest capability value kept (a `vfs_cap_data` is 20 or 24 bytes).
pub(crate) const MAX_CAPABILITY: usize = 256;
/// kind + length.
pub(crate) const FRAME_HEAD: usize = 5;
pub(crate) const FRAME_TAIL: usize = 4;
/// dev, ino, uid, gid, mode, path length.
pub(crate) const RECORD_FIXED: usize = 8 + 8 + 4 + 4 + 4 + 4;
/// A compact record takes at least: flags, inode difference, shared length, rest length.
pub(crate) const COMPACT_MIN: usize = 4;
/// Compact record flags: the field repeats the previous record's.
pub(crate) const SAME_DEV: u8 = 1;
pub(crate) const SAME_UID: u8 = 2;
pub(crate) const SAME_GID: u8 = 4;
pub(crate) const SAME_MODE: u8 = 8;
pub(crate) const ALL_FLAGS: u8 = SAME_DEV | SAME_UID | SAME_GID | SAME_MODE;
/// The path bytes a compact frame may spell out in all (its paths share prefixes, so they
/// can add up to more than the frame), and the records it may hold: bounds on what decoding
/// one frame may allocate (about 316 MiB at most). The writer refuses frames beyond them; the
/// walk's frames hold at most 1,024 records and about 5 MiB of paths.
pub(crate) const MAX_FRAME_PATHS: usize = 4 * MAX_PAYLOAD as usize;
pub(crate) const MAX_FRAME_RECORDS: u32 = 1 << 20;

/// The state of one entry before `own` changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// The full `st_mode` (file type and permission bits, setuid/setgid/sticky included).
    pub mode: u32,
    /// Relative to the journal's root, raw bytes; empty for the root itself.
    pub path: Vec<u8>,
}

/// A [`Record`] whose path is borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub path: &'a [u8],
}

impl Record {
    pub fn borrowed(&self) -> RecordRef<'_> {
        RecordRef {
            dev: self.dev,
            ino: self.ino,
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            path: &self.path,
        }
    }
}

/// Written once per `own` run, before its first record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `flowerbed X.Y.Z`.
    pub tool: String,
    pub command: String,
    /// Seconds since the Unix epoch.
    pub started: u64,
    /// The root as the user named it (lossy UTF-8: for people; identity is dev/ino).
    pub root: String,
    pub root_dev: u64,
    pub root_ino: u64,
    /// The owner `own` gave the entries.
    pub uid: u32,
    pub gid: u32,
    /// Which folder this is, beyond its inode number (absent in journals of earlier
    /// versions, and where the root could not be examined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<RootIdentity>,
}

/// What tells the root folder apart from a later one that got its inode number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootIdentity {
    pub dev: u64,
    pub ino: u64,
    /// The birth time `statx` reports, where the filesystem keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<Birth>,
    /// The inode generation (`FS_IOC_GETVERSION`), where the filesystem reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The file handle (`name_to_handle_at`): opens the folder wherever it moved on its
    /// filesystem, and fails once it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<FileHandle>,
    /// The filesystem's id (`statfs` `f_fsid`, from its UUID on ext4, xfs, btrfs): a
    /// handle is only tried on the filesystem it came from, not on another one that got
    /// the same device number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsid: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birth {
    pub secs: i64,
    pub nanos: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHandle {
    pub kind: i32,
    pub bytes: Vec<u8>,
}

/// Why a recorded path may not be used to find an entry below the root: an absolute
/// path, an empty, `.` or `..` component, or a NUL byte (the root itself is the empty path).
pub fn path_problem(path: &[u8]) -> Option<&'static str> {
    if path.is_empty() {
        return None;
    }
    if path.contains(&0) {
        return Some("holds a NUL byte");
    }
    if path.first() == Some(&b'/') {
        return Some("is absolute");
    }
    path.split(|&b| b == b'/').find_map(|component| match component {
        b"" => Some("has an empty component"),
        b"." => Some("has a `.` component"),
        b".." => Some("has a `..` component"),
        _ => None,
    })
}

/// Written when an `own` run finished its walk (absent after a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    pub changed: u64,
    pub finished: u64,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Session(SessionInfo),
    Records(Vec<Record>),
    Capabilities(Vec<Capability>),
    End(SessionEnd),
}

/// Result of decoding the frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid frame and how many bytes it used.
    Frame(Frame, usize),
    /// The slice ends inside a frame (a torn write if this is the end of the file).
    Incomplete,
    /// The bytes are not a valid frame.
    Invalid(String),
}

/// Decode the frame at the start of `bytes`.
pub fn decode_frame(bytes: &[u8]) -> Decoded {
    decode_frame_keeping(bytes, true)
}

/// [`decode_frame`]; with `keep_records` false a records frame is checked just as strictly
/// but its records are not kept (an empty list is returned), which allocates nothing.
pub(crate) fn decode_frame_keeping(bytes: &[u8], keep_records: bool) -> Decoded {
    if bytes.len() < FRAME_HEAD {
        return Decoded::Incomplete;
    }
    let kind = bytes[0];
    let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if len > MAX_PAYLOAD {
        return Decoded::Invalid(format!("frame length {len} exceeds the maximum"));
    }
    let total = FRAME_HEAD + len as usize + FRAME_TAIL;
    if bytes.len() < total {
        return Decoded::Incomplete;
    }
    let body_end = FRAME_HEAD + len as usize;
    let stored = u32::from_le_bytes(bytes[body_end..total].try_into().expect("4 bytes"));
    if crc32(&bytes[..body_end]) != stored {
        return Decoded::Invalid("checksum mismatch".into());
    }
    let payload = &bytes[FRAME_HEAD..body_end];
    let frame = match kind {
        KIND_SESSION => serde_json::from_slice(payload)
            .map(Frame::Session)
            .map_err(|e| e.to_string()),
        KIND_END => serde_json::from_slice(payload)
            .map(Frame::End)
            .map_err(|e| e.to_string()),
        KIND_RECORDS => decode_records(payload, keep_records).map(Frame::Records),
        KIND_COMPACT => decode_compact(payload, keep_records).map(Frame::Records),
        KIND_CAPABILITIES => decode_capabilities(payload).map(Frame::Capabilities),
        other => Err(format!("unknown frame kind 0x{other:02x}")),
    };
    match frame {
        Ok(frame) => Decoded::Frame(frame, total),
        Err(reason) => Decoded::Invalid(reason),
    }
}

/// Encode one frame.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let (kind, payload) = match frame {
        Frame::Session(info) => (KIND_SESSION, serde_json::to_vec(info).expect("plain struct")),
        Frame::End(end) => (KIND_END, serde_json::to_vec(end).expect("plain struct")),
        Frame::Records(records) => (KIND_COMPACT, encode_records(records)),
        Frame::Capabilities(capabilities) => (KIND_CAPABILITIES, encode_capabilities(capabilities)),
    };
    frame_of(kind, &payload)
}

/// A frame of `kind` around `payload`: head, payload, checksum.
pub(crate) fn frame_of(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len() + FRAME_TAIL);
    out.push(kind);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("frame under 4 GiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// How a journal ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Tail {
    /// Every byte belongs to a valid frame.
    Clean,
    /// The last frame was cut short or garbled by a crash; nothing it listed was changed.
    Torn { offset: u64 },
}

/// A journal that is not usable: the header or a frame before the end is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt at byte {offset}: {reason}")]
pub struct Corrupt {
    pub offset: u64,
    pub reason: String,
}

/// Check the header at the start of `bytes`.
pub fn check_header(bytes: &[u8]) -> Result<(), Corrupt> {
    if bytes.len() >= MAGIC.len() - 1 && bytes[..MAGIC.len() - 1] == MAGIC[..MAGIC.len() - 1] {
        if bytes.len() < MAGIC.len() {
            return Err(Corrupt {
                offset: 0,
                reason: "header cut short".into(),
            });
        }
        let version = bytes[MAGIC.len() - 1];
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Corrupt {
                offset: 15,
                reason: format!(
                    "format version {version}, this flowerbed reads versions {OLDEST_VERSION} to {FORMAT_VERSION}"
                ),
            });
        }
        return Ok(());
    }
    Err(Corrupt {
        offset: 0,
        reason: "not a flowerbed journal (bad magic)".into(),
    })
}

/// Decode a whole journal held in memory: its frames and how it ends.
///
/// A bad frame is tolerated only at the very end (a torn write); anything else is
/// [`Corrupt`].
pub fn parse(bytes: &[u8]) -> Result<(Vec<Frame>, Tail), Corrupt> {
    check_header(bytes)?;
    let mut frames = Vec::new();
    let mut offset = MAGIC.len();
    while offset < bytes.len() {
        match decode_frame(&bytes[offset..]) {
            Decoded::Frame(frame, used) => {
                frames.push(frame);
                offset += used;
            }
            Decoded::Incomplete => {
                return Ok((
                    frames,
                    Tail::Torn {
                        offset: offset as u64,
                    },
                ));
            }
            Decoded::Invalid(reason) => {
                if is_last_frame(&bytes[offset..]) {
                    return Ok((
                        frames,
                        Tail::Torn {
                            offset: offset as u64,
                        },
                    ));
                }
                return Err(Corrupt {
                    offset: offset as u64,
                    reason,
                });
            }
        }
    }
    Ok((frames, Tail::Clean))
}

/// Whether a frame that failed to decode reaches (or claims to reach past) the end of the
/// data: only then can it be a torn append rather than damage in the middle.
fn is_last_frame(rest: &[u8]) -> bool {
    if rest.len() < FRAME_HEAD {
        return true;
    }
    let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
    if len > MAX_PAYLOAD {
        // No writer produces such a length, so it is no cut-short append: torn only if
        // nothing follows it (as the streaming reader decides).
        return rest.len() == FRAME_HEAD;
    }
    FRAME_HEAD + len as usize + FRAME_TAIL >= rest.len()
}

/// CRC-32 (IEEE 802.3, as in zlib and gzip), with the CPU's carry-less multiply where it
/// has one: checking a journal of a few hundred thousand records stays a matter of
/// milliseconds.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::journal::testdata::*;

    #[test]
    fn version_1_journals_are_still_read() {
        let records = vec![
            record(b""),
            record(b"with space/new\nline"),
            record(b"bad\xff\xfeutf8"),
        ];
        let mut bytes = b"flowerbed-jrnl\n\x01".to_vec();
        bytes.extend(encode_frame(&Frame::Session(session())));
        bytes.extend(frame_v1(&records));
        // An older journal gets compact frames appended to it by this version.
        bytes.extend(encode_frame(&Frame::Records(vec![record(b"later")])));
        let (frames, tail) = parse(&bytes).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(frames[1], Frame::Records(records));
        assert_eq!(frames[2], Frame::Records(vec![record(b"later")]));
        assert_eq!(bytes[MAGIC.len() + encode_frame(&frames[0]).len()], KIND_RECORDS);
    }

    #[test]
    fn round_trip_keeps_raw_names() {
        let (frames, tail) = parse(&sample()).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Session(session()));
        let Frame::Records(records) = &frames[1] else {
            panic!("records expected")
        };
        assert_eq!(records[1].path, b"with space/new\nline");
        assert_eq!(records[2].path, b"bad\xff\xfeutf8");
        assert_eq!(records[0].mode, 0o104_755);
    }

    #[test]
    fn every_truncation_is_a_torn_tail_never_an_error() {
        let bytes = sample();
        let (frames, _) = parse(&bytes).unwrap();
        // Cutting exactly between frames leaves a shorter, clean journal.
        let mut boundaries = vec![MAGIC.len()];
        for frame in &frames {
            boundaries.push(boundaries.last().unwrap() + encode_frame(frame).len());
        }
        for cut in MAGIC.len()..bytes.len() {
            let (frames, tail) = parse(&bytes[..cut]).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert!(frames.len() < 3, "cut {cut}");
            if boundaries.contains(&cut) {
                assert_eq!(tail, Tail::Clean, "cut {cut}");
            } else {
                assert!(matches!(tail, Tail::Torn { .. }), "cut {cut}: {tail:?}");
            }
        }
    }

    #[test]
    fn flipped_byte_in_the_last_frame_is_torn_tail() {
        let mut bytes = sample();
        let last = bytes.len() - 6;
        bytes[last] ^= 0x40;
        let (frames, tail) = parse(&bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(matches!(tail, Tail::Torn { .. }));
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption() {
        let mut bytes = sample();
        // Inside the records frame, which is followed by the end frame.
        let offset = MAGIC.len() + encode_frame(&Frame::Session(session())).len() + 20;
        bytes[offset] ^= 0x01;
        let err = parse(&bytes).unwrap_err();
        assert!(err.reason.contains("checksum"), "{err}");
    }

    #[test]
    fn bad_magic_and_future_version_are_rejected() {
        let mut bytes = sample();
        bytes[0] = b'x';
        assert!(parse(&bytes).unwrap_err().reason.contains("magic"));
        let mut bytes = sample();
        bytes[15] = 9;
        assert!(parse(&bytes).unwrap_err().reason.contains("version 9"));
        bytes[15] = 0;
        assert!(parse(&bytes).unwrap_err().reason.contains("version 0"));
    }

    #[test]
    fn huge_counts_and_lengths_are_rejected_without_allocating() {
        let mut payload = u32::MAX.to_le_bytes().to_vec();
        payload.extend([0u8; 8]);
        let frame = frame_of(KIND_RECORDS, &payload);
        assert!(matches!(decode_frame(&frame), Decoded::Invalid(r) if r.contains("count")));

        let mut frame = vec![KIND_RECORDS];
        frame.extend(u32::MAX.to_le_bytes());
        assert!(matches!(decode_frame(&frame), Decoded::Invalid(r) if r.contains("maximum")));
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn recorded_paths_that_could_leave_the_root_are_named() {
        for (path, problem) in [
            (&b"../victim"[..], Some("has a `..` component")),
            (b"a/../../b", Some("has a `..` component")),
            (b"..", Some("has a `..` component")),
            (b"/etc/passwd", Some("is absolute")),
            (b"a//b", Some("has an empty component")),
            (b"a/", Some("has an empty component")),
            (b"./a", Some("has a `.` component")),
            (b"a\x00b", Some("holds a NUL byte")),
            (b"", None),
            (b"a/b/...", None),
            (b"..hidden/x", None),
        ] {
            assert_eq!(path_problem(path), problem, "{}", String::from_utf8_lossy(path));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut input = MAGIC.to_vec();
            input.extend(bytes);
            let _ = parse(&input);
        }
    }
}

//! The ownership journal: what `own` changed, written and synced before the change.
//!
//! # Format (version 2; version 1 is still read)
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
//! * `E` session end: JSON [`SessionEnd`].
//!
//! This version appends compact frames to a version 1 journal too, after setting its
//! header's version byte to 2: an older flowerbed then refuses the file as a whole, rather
//! than take a compact frame at its end for a torn write.
//!
//! Paths are relative to the root, raw bytes (names may be invalid UTF-8 or contain
//! newlines), empty for the root itself. A records frame of the walk takes about 5 to 10
//! bytes per entry, against about 50 in version 1: less to write and sync before changes.
//!
//! Frames are only ever appended. Each records frame is flushed and synced before any entry
//! it lists is changed, so after a crash the file is a valid prefix plus, at most, one torn
//! frame at the very end; [`parse`] tolerates exactly that and rejects anything else.
//!
//! The decoding functions are pure functions over bytes so that they can be fuzzed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The first bytes of every journal file this build creates; the last byte is the format
/// version.
pub const MAGIC: &[u8; 16] = b"flowerbed-jrnl\n\x02";
/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest format version this build reads (and appends to, with compact frames).
pub const OLDEST_VERSION: u8 = 1;
/// No frame is larger than this; a larger length means corruption, not a big batch.
pub const MAX_PAYLOAD: u32 = 64 << 20;

const KIND_SESSION: u8 = b'S';
/// Records as version 1 wrote them.
const KIND_RECORDS: u8 = b'R';
/// Records, compact.
const KIND_COMPACT: u8 = b'C';
const KIND_END: u8 = b'E';
/// kind + length.
const FRAME_HEAD: usize = 5;
const FRAME_TAIL: usize = 4;
/// dev, ino, uid, gid, mode, path length.
const RECORD_FIXED: usize = 8 + 8 + 4 + 4 + 4 + 4;
/// A compact record takes at least: flags, inode difference, shared length, rest length.
const COMPACT_MIN: usize = 4;
/// Compact record flags: the field repeats the previous record's.
const SAME_DEV: u8 = 1;
const SAME_UID: u8 = 2;
const SAME_GID: u8 = 4;
const SAME_MODE: u8 = 8;
const ALL_FLAGS: u8 = SAME_DEV | SAME_UID | SAME_GID | SAME_MODE;
/// The path bytes a compact frame may spell out in all (its paths share prefixes, so they
/// can add up to more than the frame), and the records it may hold: bounds on what decoding
/// one frame may allocate (about 316 MiB at most). The writer refuses frames beyond them; the
/// walk's frames hold at most 1,024 records and about 5 MiB of paths.
const MAX_FRAME_PATHS: usize = 4 * MAX_PAYLOAD as usize;
const MAX_FRAME_RECORDS: u32 = 1 << 20;

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
fn decode_frame_keeping(bytes: &[u8], keep_records: bool) -> Decoded {
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
        other => Err(format!("unknown frame kind 0x{other:02x}")),
    };
    match frame {
        Ok(frame) => Decoded::Frame(frame, total),
        Err(reason) => Decoded::Invalid(reason),
    }
}

fn decode_records(payload: &[u8], keep: bool) -> Result<Vec<Record>, String> {
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

fn decode_compact(payload: &[u8], keep: bool) -> Result<Vec<Record>, String> {
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
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
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
struct CompactEncoder {
    dev: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    path: Vec<u8>,
}

impl CompactEncoder {
    /// Forget the previous record (keeping the path's buffer).
    fn restart(&mut self) {
        (self.dev, self.ino, self.uid, self.gid, self.mode) = (0, 0, 0, 0, 0);
        self.path.clear();
    }

    fn push(&mut self, record: RecordRef<'_>, out: &mut Vec<u8>) {
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

struct ByteCursor<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteCursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("record runs past the end of its frame".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// An unsigned LEB128 number (see [`put_varint`]).
    fn varint(&mut self) -> Result<u64, String> {
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
    fn varint_len(&mut self) -> Result<usize, String> {
        usize::try_from(self.varint()?).map_err(|_| "length too large".to_string())
    }
}

/// Encode one frame.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let (kind, payload) = match frame {
        Frame::Session(info) => (KIND_SESSION, serde_json::to_vec(info).expect("plain struct")),
        Frame::End(end) => (KIND_END, serde_json::to_vec(end).expect("plain struct")),
        Frame::Records(records) => (KIND_COMPACT, encode_records(records)),
    };
    frame_of(kind, &payload)
}

/// A frame of `kind` around `payload`: head, payload, checksum.
fn frame_of(kind: u8, payload: &[u8]) -> Vec<u8> {
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

/// The payload of a compact records frame.
fn encode_records(records: &[Record]) -> Vec<u8> {
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

// ---------------------------------------------------------------------------------------
// Streaming reader: the same decoding, without holding a large journal in memory.

/// Reads frames one at a time from a journal file.
pub struct FrameReader<R> {
    input: R,
    offset: u64,
    buf: Vec<u8>,
    tail: Option<Tail>,
    keep_records: bool,
}

impl<R: Read> FrameReader<R> {
    /// Start after the header (checked here).
    pub fn new(mut input: R) -> Result<Self, Corrupt> {
        let mut header = [0u8; MAGIC.len()];
        let got = read_full(&mut input, &mut header).map_err(|e| Corrupt {
            offset: 0,
            reason: e.to_string(),
        })?;
        check_header(&header[..got])?;
        Ok(Self {
            input,
            offset: MAGIC.len() as u64,
            buf: Vec::new(),
            tail: None,
            keep_records: true,
        })
    }

    /// Check frames without keeping their records: every records frame comes back with an
    /// empty list. For validating a journal before appending to it.
    #[must_use]
    pub fn checking_only(mut self) -> Self {
        self.keep_records = false;
        self
    }

    /// Continue at `offset` (a frame boundary reported by [`Self::offset`]) of the same input.
    pub fn resume(input: R, offset: u64) -> Self {
        Self {
            input,
            offset,
            buf: Vec::new(),
            tail: None,
            keep_records: true,
        }
    }

    /// Byte offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How the journal ended, once [`Self::next_frame`] returned `None`.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The next frame, `None` at the end (see [`Self::tail`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Corrupt> {
        if self.tail.is_some() {
            return Ok(None);
        }
        let io_err = |offset: u64| {
            move |e: io::Error| Corrupt {
                offset,
                reason: e.to_string(),
            }
        };
        self.buf.resize(FRAME_HEAD, 0);
        let got = read_full(&mut self.input, &mut self.buf).map_err(io_err(self.offset))?;
        if got == 0 {
            self.tail = Some(Tail::Clean);
            return Ok(None);
        }
        if got < FRAME_HEAD {
            self.tail = Some(Tail::Torn { offset: self.offset });
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if len > MAX_PAYLOAD {
            return self.invalid(format!("frame length {len} exceeds the maximum"));
        }
        let total = FRAME_HEAD + len as usize + FRAME_TAIL;
        self.buf.resize(total, 0);
        let got = read_full(&mut self.input, &mut self.buf[FRAME_HEAD..]).map_err(io_err(self.offset))?;
        if got < total - FRAME_HEAD {
            self.tail = Some(Tail::Torn { offset: self.offset });
            return Ok(None);
        }
        match decode_frame_keeping(&self.buf, self.keep_records) {
            Decoded::Frame(frame, used) => {
                self.offset += used as u64;
                Ok(Some(frame))
            }
            Decoded::Incomplete => unreachable!("the whole frame was read"),
            Decoded::Invalid(reason) => self.invalid(reason),
        }
    }

    /// A bad frame is a torn tail when nothing follows it, corruption otherwise.
    fn invalid(&mut self, reason: String) -> Result<Option<Frame>, Corrupt> {
        let mut probe = [0u8; 1];
        let more = read_full(&mut self.input, &mut probe).map_err(|e| Corrupt {
            offset: self.offset,
            reason: e.to_string(),
        })?;
        if more == 0 {
            self.tail = Some(Tail::Torn { offset: self.offset });
            Ok(None)
        } else {
            Err(Corrupt {
                offset: self.offset,
                reason,
            })
        }
    }
}

/// Read until `buf` is full or the input ends; the count read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

// ---------------------------------------------------------------------------------------
// Where journals live.

/// Environment variable that overrides the state directory (tests, the Docker helper).
pub const STATE_DIR_ENV: &str = "FLOWERBED_STATE_DIR";

/// The directory journals are kept in.
///
/// Root uses a root-owned system location so the journal is out of reach of the container's
/// UID; anyone else uses their XDG state directory.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/flowerbed"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("flowerbed"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_STATE_HOME nor HOME is set: cannot place the journal")?;
    Ok(PathBuf::from(home).join(".local/state/flowerbed"))
}

/// The journal file for the root with this device and inode.
pub fn journal_path(dir: &Path, dev: u64, ino: u64) -> PathBuf {
    dir.join(format!("own-{dev:x}-{ino:x}.journal"))
}

/// The (device, inode) of every root that has a journal in `dir`, sorted, read off the file
/// names [`journal_path`] gives (nothing if the folder cannot be read).
pub fn journal_roots(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut roots: Vec<(u64, u64)> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let (dev, ino) = name
                .to_str()?
                .strip_prefix("own-")?
                .strip_suffix(".journal")?
                .split_once('-')?;
            Some((
                u64::from_str_radix(dev, 16).ok()?,
                u64::from_str_radix(ino, 16).ok()?,
            ))
        })
        .collect();
    roots.sort_unstable();
    roots
}

/// Create the state directory (0700) if needed and check nobody else can write into it.
///
/// `forbidden_uid` is the owner `own` hands out: a journal that UID could edit would let a
/// container steer a later `undo`.
pub fn ensure_state_dir(dir: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create the journal directory", dir.display()))?;
    check_private(dir, forbidden_uid)
}

fn check_private(path: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{}: journal location is a symbolic link; refusing to use it",
            path.display()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{}: journal location is writable by group or others (mode {:o}); run `chmod go-w {}`",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        );
    }
    if forbidden_uid == Some(meta.uid()) && meta.uid() != 0 {
        bail!(
            "{}: journal location is owned by UID {}, the owner being handed out; choose another {STATE_DIR_ENV}",
            path.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// Records waiting to be written as one compact records frame (each walker thread fills
/// its own).
#[derive(Debug, Default)]
pub struct RecordBatch {
    /// The frame head and payload, encoded as records arrive; count and length are filled
    /// in when the batch is sealed.
    bytes: Vec<u8>,
    count: u32,
    encoder: CompactEncoder,
    /// Its paths' bytes, spelled out (what decoding the frame will allocate for them).
    spelled: usize,
}

impl RecordBatch {
    pub fn add(&mut self, record: &Record) {
        self.push(record.borrowed());
    }

    /// [`Self::add`] from a borrowed record: the walk's hot path, which allocates nothing.
    pub fn push(&mut self, record: RecordRef<'_>) {
        if self.bytes.is_empty() {
            // kind, payload length, record count: patched in `seal`.
            self.bytes
                .extend_from_slice(&[KIND_COMPACT, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        self.encoder.push(record, &mut self.bytes);
        self.spelled += record.path.len();
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// The bytes of the frame so far: the walk seals a batch early when it gets large (deep
    /// paths), so that no frame comes near [`MAX_PAYLOAD`].
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Finish the frame (lengths and checksum) and empty the batch for reuse.
    pub fn seal(&mut self) -> SealedBatch {
        let payload_len = u32::try_from(self.bytes.len() - FRAME_HEAD).expect("batch under 4 GiB");
        self.bytes[1..5].copy_from_slice(&payload_len.to_le_bytes());
        self.bytes[5..9].copy_from_slice(&self.count.to_le_bytes());
        let crc = crc32(&self.bytes);
        // The next batch is likely as large: start it with room for that.
        let next = Vec::with_capacity(self.bytes.capacity());
        let mut frame = std::mem::replace(&mut self.bytes, next);
        frame.extend_from_slice(&crc.to_le_bytes());
        let records = std::mem::take(&mut self.count);
        let spelled = std::mem::take(&mut self.spelled);
        // Every frame stands alone: the next one starts from zeros and an empty path.
        self.encoder.restart();
        SealedBatch {
            frame,
            records,
            spelled,
        }
    }
}

/// A finished records frame, ready to be appended.
pub struct SealedBatch {
    frame: Vec<u8>,
    records: u32,
    /// Its paths' bytes, spelled out.
    spelled: usize,
}

#[cfg(test)]
impl SealedBatch {
    fn into_frame(self) -> Vec<u8> {
        self.frame
    }
}

/// Test hook: `FLOWERBED_TEST_JOURNAL_MAX_BYTES=N` makes the journal behave like a file on
/// a full disk once it would grow past N bytes (part of the frame is written, then ENOSPC),
/// for the disk-full tests where a small filesystem cannot be mounted. Never set it otherwise.
pub const MAX_BYTES_ENV: &str = "FLOWERBED_TEST_JOURNAL_MAX_BYTES";

/// Appends frames to a journal, syncing before changes are made.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    session: Option<SessionInfo>,
    pending: RecordBatch,
    written_records: u64,
    /// Length of the file up to its last complete, synced frame.
    good_len: u64,
    /// Why a write failed: then nothing more is appended (a frame after a torn one would
    /// turn the torn tail into corruption mid-file).
    broken: Option<String>,
    max_bytes: Option<u64>,
    /// What [`Self::prepare`] still has to do (or why it failed).
    preparation: Preparation,
    /// An existing journal of an older format version: its header is brought up to date
    /// before the first frame is appended (not before: a run that changes nothing leaves
    /// the journal as it was).
    older_version: bool,
}

/// The slow part of opening a journal, left to [`JournalWriter::prepare`] so that it can run
/// on the syncing thread while the walk starts.
enum Preparation {
    /// Made by `open`: the file and its directory entry are not synced yet.
    NewFile,
    /// Existing frames not read back yet.
    Existing,
    Done,
    Failed(String),
}

impl JournalWriter {
    /// Open (creating, mode 0600) the journal for a root; the session frame is written with
    /// the first batch, so a run that changes nothing leaves the journal as it was. Only the
    /// file's mode and owner are checked here: nothing is appended before [`Self::prepare`]
    /// has read the existing frames back (or synced a new file).
    pub fn open(path: &Path, session: SessionInfo, forbidden_uid: Option<u32>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("{}: cannot open the journal", path.display()))?;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{}: journal is readable or writable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.mode() & 0o7777,
                path.display()
            );
        }
        if forbidden_uid == Some(meta.uid()) && meta.uid() != 0 {
            bail!(
                "{}: journal is owned by UID {}, refusing to trust it",
                path.display(),
                meta.uid()
            );
        }
        let mut writer = Self {
            file,
            path: path.to_path_buf(),
            session: Some(session),
            pending: RecordBatch::default(),
            written_records: 0,
            good_len: 0,
            broken: None,
            max_bytes: std::env::var(MAX_BYTES_ENV).ok().and_then(|v| v.parse().ok()),
            preparation: Preparation::Existing,
            older_version: false,
        };
        if meta.len() == 0 {
            writer.file.write_all(MAGIC)?;
            writer.preparation = Preparation::NewFile;
        }
        Ok(writer)
    }

    /// Make the journal ready for frames: sync a new file and its directory entry, or read
    /// an existing journal back, refusing one that is damaged and cutting a torn tail left
    /// by a crash (appending after it would turn it into corruption mid-file). Runs once;
    /// later calls give the same outcome, and appending calls it first.
    pub fn prepare(&mut self) -> Result<()> {
        let result = match self.preparation {
            Preparation::Done => return Ok(()),
            Preparation::Failed(ref reason) => bail!("{reason}"),
            Preparation::NewFile => self.sync_new_file(),
            Preparation::Existing => self.check_existing(),
        };
        match result {
            Ok(()) => {
                self.good_len = self.file.metadata()?.len();
                self.preparation = Preparation::Done;
                Ok(())
            }
            Err(err) => {
                self.preparation = Preparation::Failed(format!("{err:#}"));
                Err(err)
            }
        }
    }

    fn sync_new_file(&mut self) -> Result<()> {
        self.file.sync_all()?;
        // The new directory entry must survive a crash too.
        if let Some(parent) = self.path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    fn check_existing(&mut self) -> Result<()> {
        let path = self.path.display();
        let mut reader = FrameReader::new(io::BufReader::with_capacity(1 << 16, &self.file))
            .map_err(|e| anyhow::anyhow!("{path}: journal {e}"))?
            .checking_only();
        while reader
            .next_frame()
            .map_err(|e| anyhow::anyhow!("{path}: journal {e}; run `flowerbed undo` or move it away"))?
            .is_some()
        {}
        if let Some(Tail::Torn { offset }) = reader.tail() {
            self.file.set_len(*offset)?;
            self.file.sync_all()?;
        }
        let mut version = [0u8];
        self.file.read_exact_at(&mut version, MAGIC.len() as u64 - 1)?;
        self.older_version = version[0] != FORMAT_VERSION;
        Ok(())
    }

    /// Mark a version 1 journal as version 2 before compact frames are appended to it, so
    /// that an older flowerbed refuses it as a whole instead of taking its first compact
    /// frame for a torn write (which it would cut off, losing what that frame recorded).
    fn upgrade_header(&mut self) -> Result<()> {
        // Written through a second descriptor: writes through the first always append.
        let header = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&self.path)?;
        let (ours, theirs) = (self.file.metadata()?, header.metadata()?);
        if (ours.dev(), ours.ino()) != (theirs.dev(), theirs.ino()) {
            bail!(
                "{}: the journal was replaced while being opened",
                self.path.display()
            );
        }
        header.write_all_at(&[FORMAT_VERSION], MAGIC.len() as u64 - 1)?;
        header.sync_data()?;
        self.older_version = false;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a record; it is on disk after the next [`Self::commit`].
    pub fn add(&mut self, record: &Record) {
        self.pending.add(record);
    }

    /// Write the queued records as one frame and sync it: only after this returns may the
    /// entries it lists be changed.
    pub fn commit(&mut self) -> Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        self.commit_batch(&mut pending)
    }

    /// Write `batch` as one frame, sync it, and empty the batch.
    pub fn commit_batch(&mut self, batch: &mut RecordBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_sealed(&[batch.seal()])
    }

    /// Append finished frames with one write and one sync (a group commit).
    pub fn commit_sealed(&mut self, batches: &[SealedBatch]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        // A frame the readers would refuse must never be written: it would make the whole
        // journal unreadable, and `undo` impossible.
        for batch in batches {
            let payload = batch.frame.len() - FRAME_HEAD - FRAME_TAIL;
            if payload > MAX_PAYLOAD as usize
                || batch.records > MAX_FRAME_RECORDS
                || batch.spelled > MAX_FRAME_PATHS
            {
                bail!(
                    "{}: a journal frame of {} records, {payload} bytes and {} bytes of paths is over what a frame may hold",
                    self.path.display(),
                    batch.records,
                    batch.spelled
                );
            }
        }
        let mut out = Vec::with_capacity(batches.iter().map(|b| b.frame.len()).sum::<usize>() + 256);
        if let Some(session) = self.session.take() {
            out.extend_from_slice(&encode_frame(&Frame::Session(session)));
        }
        for batch in batches {
            out.extend_from_slice(&batch.frame);
        }
        self.append(&out)?;
        self.written_records += batches.iter().map(|b| u64::from(b.records)).sum::<u64>();
        Ok(())
    }

    /// Append whole frames and sync them. On failure (a full disk, an I/O error) the file is
    /// cut back to its last complete frame, as far as possible, and the writer refuses any
    /// further frame: what it synced before stays a valid journal.
    fn append(&mut self, frames: &[u8]) -> Result<()> {
        self.prepare()?;
        if let Some(reason) = &self.broken {
            bail!("{}: cannot write the journal: {reason}", self.path.display());
        }
        if self.older_version {
            self.upgrade_header()
                .with_context(|| format!("{}: cannot update the journal's header", self.path.display()))?;
        }
        let result = self.write_limited(frames).and_then(|()| self.file.sync_data());
        if let Err(err) = result {
            self.broken = Some(err.to_string());
            let _ = self
                .file
                .set_len(self.good_len)
                .and_then(|()| self.file.sync_data());
            return Err(err).with_context(|| format!("{}: cannot write the journal", self.path.display()));
        }
        self.good_len += frames.len() as u64;
        Ok(())
    }

    fn write_limited(&mut self, frames: &[u8]) -> io::Result<()> {
        if let Some(max) = self.max_bytes {
            let room = usize::try_from(max.saturating_sub(self.good_len)).unwrap_or(usize::MAX);
            if frames.len() > room {
                self.file.write_all(&frames[..room])?;
                return Err(io::Error::from_raw_os_error(nix::libc::ENOSPC));
            }
        }
        self.file.write_all(frames)
    }

    /// Close the session (only if it recorded anything); an error if the journal could not
    /// be made ready (see [`Self::prepare`]).
    pub fn finish(mut self, finished: u64) -> Result<u64> {
        self.prepare()?;
        self.commit()?;
        if self.written_records > 0 {
            let end = encode_frame(&Frame::End(SessionEnd {
                changed: self.written_records,
                finished,
            }));
            self.append(&end)?;
        }
        Ok(self.written_records)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A summary of one journal file, streamed (memory does not grow with the journal).
#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    pub file: PathBuf,
    pub sessions: Vec<SessionSummary>,
    pub tail: Tail,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub info: SessionInfo,
    /// Byte offset of the session frame, for replaying this session alone.
    #[serde(skip)]
    pub offset: u64,
    pub records: u64,
    /// Whether the run got to its end frame (false after a crash or kill).
    pub finished: bool,
}

/// Read a journal file's sessions and check every frame.
pub fn summarize(path: &Path) -> Result<JournalSummary> {
    let file = File::open(path).with_context(|| format!("{}: cannot open the journal", path.display()))?;
    let mut reader = FrameReader::new(io::BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?;
    let mut sessions: Vec<SessionSummary> = Vec::new();
    loop {
        let offset = reader.offset();
        let frame = reader
            .next_frame()
            .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?;
        match frame {
            None => break,
            Some(Frame::Session(info)) => sessions.push(SessionSummary {
                info,
                offset,
                records: 0,
                finished: false,
            }),
            Some(Frame::Records(records)) => match sessions.last_mut() {
                Some(session) => session.records += records.len() as u64,
                None => bail!(
                    "{}: journal corrupt at byte {offset}: records before any session",
                    path.display()
                ),
            },
            Some(Frame::End(_)) => {
                if let Some(session) = sessions.last_mut() {
                    session.finished = true;
                }
            }
        }
    }
    let tail = reader.tail().cloned().unwrap_or(Tail::Clean);
    Ok(JournalSummary {
        file: path.to_path_buf(),
        sessions,
        tail,
    })
}

/// Stream the records of the session starting at `offset`, batch by batch.
pub fn for_each_batch(
    path: &Path,
    offset: u64,
    mut visit: impl FnMut(&[Record]) -> Result<()>,
) -> Result<()> {
    let mut file =
        File::open(path).with_context(|| format!("{}: cannot open the journal", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = FrameReader::resume(io::BufReader::new(file), offset);
    let mut started = false;
    while let Some(frame) = reader
        .next_frame()
        .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?
    {
        match frame {
            Frame::Session(_) if started => break,
            Frame::Session(_) => started = true,
            Frame::Records(records) => visit(&records)?,
            Frame::End(_) => break,
        }
    }
    Ok(())
}

/// Records [`par_for_each_batch`] hands a worker at a time.
const PAR_CHUNK_RECORDS: usize = 2_048;

/// Like [`for_each_batch`], with `workers` threads taking batches as they come, each with
/// its own state from `init`; returns the states. Batches of one session list distinct
/// entries, so they can be handled in any order.
pub fn par_for_each_batch<S: Send>(
    path: &Path,
    offset: u64,
    workers: usize,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, &[Record]) -> Result<()> + Sync,
) -> Result<Vec<S>> {
    let mut file =
        File::open(path).with_context(|| format!("{}: cannot open the journal", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    // (reader, session frame seen, session over, records of the current frame not handed out)
    let reader = std::sync::Mutex::new((
        FrameReader::resume(io::BufReader::new(file), offset),
        false,
        false,
        std::collections::VecDeque::new(),
    ));
    // A frame holds up to tens of thousands of records: handing them out in chunks keeps
    // every worker busy until the end (chunks keep walk order, so paths stay close).
    let next_batch = || -> Result<Option<Vec<Record>>> {
        let mut guard = reader.lock().expect("journal reader lock");
        let (reader, started, over, rest) = &mut *guard;
        loop {
            if !rest.is_empty() {
                let take = rest.len().min(PAR_CHUNK_RECORDS);
                return Ok(Some(rest.drain(..take).collect()));
            }
            if *over {
                return Ok(None);
            }
            let frame = reader
                .next_frame()
                .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?;
            match frame {
                None | Some(Frame::End(_)) => *over = true,
                Some(Frame::Session(_)) if *started => *over = true,
                Some(Frame::Session(_)) => *started = true,
                Some(Frame::Records(records)) => rest.extend(records),
            }
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<S> {
                    let mut state = init();
                    while let Some(batch) = next_batch()? {
                        visit(&mut state, &batch)?;
                    }
                    Ok(state)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("journal worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionInfo {
        SessionInfo {
            tool: "flowerbed test".into(),
            command: "own".into(),
            started: 1,
            root: "/srv/certs".into(),
            root_dev: 7,
            root_ino: 9,
            uid: 49_999,
            gid: 49_999,
        }
    }

    fn record(path: &[u8]) -> Record {
        Record {
            dev: 7,
            ino: 100 + path.len() as u64,
            uid: 0,
            gid: 0,
            mode: 0o104_755,
            path: path.to_vec(),
        }
    }

    fn sample() -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(encode_frame(&Frame::Session(session())));
        bytes.extend(encode_frame(&Frame::Records(vec![
            record(b""),
            record(b"with space/new\nline"),
            record(b"bad\xff\xfeutf8"),
        ])));
        bytes.extend(encode_frame(&Frame::End(SessionEnd {
            changed: 3,
            finished: 2,
        })));
        bytes
    }

    /// A records frame as version 1 wrote it.
    fn frame_v1(records: &[Record]) -> Vec<u8> {
        let mut payload = u32::try_from(records.len()).unwrap().to_le_bytes().to_vec();
        for record in records {
            payload.extend(record.dev.to_le_bytes());
            payload.extend(record.ino.to_le_bytes());
            payload.extend(record.uid.to_le_bytes());
            payload.extend(record.gid.to_le_bytes());
            payload.extend(record.mode.to_le_bytes());
            payload.extend(u32::try_from(record.path.len()).unwrap().to_le_bytes());
            payload.extend(&record.path);
        }
        frame_of(KIND_RECORDS, &payload)
    }

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

    #[test]
    fn a_frame_over_the_maximum_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        writer
            .commit_sealed(&[{
                let mut batch = RecordBatch::default();
                batch.add(&record(b"fine"));
                batch.seal()
            }])
            .unwrap();
        let good = fs::read(&path).unwrap();
        // Too many bytes; paths that spell out too much (small as a frame); too many records.
        let long = vec![b'x'; 1 << 16];
        for case in 0..3 {
            let mut batch = RecordBatch::default();
            match case {
                0 => batch.add(&record(&vec![b'x'; MAX_PAYLOAD as usize])),
                1 => (0..=MAX_FRAME_PATHS >> 16).for_each(|_| batch.add(&record(&long))),
                _ => (0..=MAX_FRAME_RECORDS).for_each(|_| batch.add(&record(b""))),
            }
            let err = writer.commit_sealed(&[batch.seal()]).unwrap_err().to_string();
            assert!(err.contains("over what a frame may hold"), "{err}");
            assert_eq!(fs::read(&path).unwrap(), good);
        }
        assert!(parse(&good).is_ok());
    }

    #[test]
    fn a_version_1_journal_is_marked_version_2_before_compact_frames_join_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let old = vec![record(b"before")];
        let mut bytes = b"flowerbed-jrnl\n\x01".to_vec();
        bytes.extend(encode_frame(&Frame::Session(session())));
        bytes.extend(frame_v1(&old));
        fs::write(&path, &bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        writer.prepare().unwrap();
        // Nothing appended, nothing changed.
        writer.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        writer.add(&record(b"after"));
        writer.commit().unwrap();
        let marked = fs::read(&path).unwrap();
        assert_eq!(marked[..15], bytes[..15]);
        assert_eq!(marked[15], FORMAT_VERSION);
        assert_eq!(marked[16..bytes.len()], bytes[16..]);
        let (frames, tail) = parse(&marked).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(frames[1], Frame::Records(old));
        assert_eq!(frames[3], Frame::Records(vec![record(b"after")]));
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

    /// Found by the `journal_reader` fuzz target: a frame length over the maximum with
    /// bytes after it was a torn tail for `parse` but corruption for the streaming reader
    /// that `undo` uses. Both now call it corruption (and a torn tail when nothing follows).
    #[test]
    fn oversized_length_is_judged_alike_by_both_readers() {
        for (tail, corrupt) in [
            (&b"R\xff\xff\xff\xff"[..], false),
            (&b"R\xff\xff\xff\xff\x00"[..], true),
        ] {
            let mut bytes = sample();
            bytes.extend_from_slice(tail);
            let parsed = parse(&bytes);
            let mut reader = FrameReader::new(&bytes[..]).unwrap();
            let streamed = loop {
                match reader.next_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) => break Ok(reader.tail().cloned().unwrap()),
                    Err(err) => break Err(err),
                }
            };
            assert_eq!(parsed.is_err(), corrupt, "{tail:?}: {parsed:?}");
            assert_eq!(streamed.is_err(), corrupt, "{tail:?}: {streamed:?}");
            if !corrupt {
                assert_eq!(parsed.unwrap().1, streamed.unwrap());
            }
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn streaming_reader_agrees_with_parse() {
        let bytes = sample();
        for cut in [bytes.len(), bytes.len() - 1, bytes.len() - 30] {
            let mut reader = FrameReader::new(&bytes[..cut]).unwrap();
            let mut streamed = Vec::new();
            while let Some(frame) = reader.next_frame().unwrap() {
                streamed.push(frame);
            }
            let (parsed, tail) = parse(&bytes[..cut]).unwrap();
            assert_eq!(streamed, parsed);
            assert_eq!(reader.tail(), Some(&tail));
        }
    }

    #[test]
    fn writer_output_reads_back_and_empty_runs_leave_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let writer = JournalWriter::open(&path, session(), None).unwrap();
        assert_eq!(writer.finish(5).unwrap(), 0);
        assert_eq!(fs::read(&path).unwrap(), MAGIC);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);

        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        writer.add(&record(b"a"));
        writer.commit().unwrap();
        writer.add(&record(b"b\nc"));
        writer.finish(5).unwrap();
        let (frames, tail) = parse(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(frames.len(), 4);
        let summary = summarize(&path).unwrap();
        assert_eq!(summary.sessions.len(), 1);
        assert_eq!(summary.sessions[0].records, 2);
        assert!(summary.sessions[0].finished);
        let mut seen = Vec::new();
        for_each_batch(&path, summary.sessions[0].offset, |batch| {
            seen.extend(batch.iter().map(|r| r.path.clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![b"a".to_vec(), b"b\nc".to_vec()]);
    }

    #[test]
    fn appending_after_a_torn_tail_cuts_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        writer.add(&record(b"first"));
        writer.finish(1).unwrap();
        // A crash in the middle of the next frame.
        let mut torn = encode_frame(&Frame::Records(vec![record(b"lost")]));
        torn.truncate(torn.len() / 2);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn).unwrap();
        assert!(matches!(
            parse(&fs::read(&path).unwrap()).unwrap().1,
            Tail::Torn { .. }
        ));

        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        writer.add(&record(b"second"));
        writer.finish(2).unwrap();
        let (frames, tail) = parse(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(frames.len(), 6);
    }

    #[test]
    fn journal_roots_are_read_off_journal_names_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "own-fe00-1a.journal",
            "own-2-5.journal",
            "own-zz-1.journal",
            "own-1-2.txt",
            "notes",
            "own-3.journal",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            journal_path(dir.path(), 0xfe00, 0x1a),
            dir.path().join("own-fe00-1a.journal")
        );
        assert_eq!(journal_roots(dir.path()), vec![(2, 5), (0xfe00, 0x1a)]);
        assert!(journal_roots(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn appending_to_a_corrupt_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = sample();
        bytes[MAGIC.len() + 8] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        let err = writer.prepare().unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        // Every later attempt is refused alike, and nothing is appended.
        writer.add(&record(b"more"));
        let again = writer.commit().unwrap_err();
        assert_eq!(format!("{again:#}"), format!("{err:#}"));
        assert!(writer.finish(1).is_err());
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    /// Where each reader stops and why: the frame kinds seen, then the tail or the error.
    fn outline(bytes: &[u8], checking_only: bool) -> Result<(Vec<u8>, Tail), Corrupt> {
        let mut reader = FrameReader::new(bytes)?;
        if checking_only {
            reader = reader.checking_only();
        }
        let mut kinds = Vec::new();
        while let Some(frame) = reader.next_frame()? {
            kinds.push(match frame {
                Frame::Session(_) => KIND_SESSION,
                Frame::Records(records) => {
                    assert!(
                        !checking_only || records.is_empty(),
                        "a checking reader keeps no records"
                    );
                    KIND_RECORDS
                }
                Frame::End(_) => KIND_END,
            });
        }
        Ok((kinds, reader.tail().cloned().expect("a tail at the end")))
    }

    #[test]
    fn checking_only_reader_judges_like_the_full_reader() {
        let bytes = sample();
        let mut damaged = vec![bytes.clone(), bytes[..bytes.len() - 7].to_vec()];
        for at in [
            MAGIC.len() + 3,
            MAGIC.len() + 20,
            bytes.len() / 2,
            bytes.len() - 2,
        ] {
            let mut copy = bytes.clone();
            copy[at] ^= 0x5a;
            damaged.push(copy);
        }
        for input in damaged {
            assert_eq!(outline(&input, true), outline(&input, false));
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

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut input = MAGIC.to_vec();
            input.extend(bytes);
            let _ = parse(&input);
        }

        #[test]
        fn checking_only_agrees_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut input = sample();
            input.extend(bytes);
            proptest::prop_assert_eq!(outline(&input, true), outline(&input, false));
        }
    }
}

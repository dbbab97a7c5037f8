//! Appending to a journal: record batches, frames synced before the changes they list.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::format::{
    CompactEncoder, FORMAT_VERSION, FRAME_HEAD, FRAME_TAIL, Frame, FrameReader, KIND_CAPABILITIES,
    KIND_COMPACT, MAGIC, MAX_CAPABILITY, MAX_FRAME_PATHS, MAX_FRAME_RECORDS, MAX_PAYLOAD, Record, RecordRef,
    SessionEnd, SessionInfo, Tail, crc32, encode_frame, push_capability,
};

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
    /// The capability frame of its records' files that have one (head, count, entries),
    /// empty while there is none: rare, so it costs nothing on the walk's hot path.
    capabilities: Vec<u8>,
    capability_count: u32,
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

    /// [`Self::push`] for a file whose `security.capability` attribute is `value`: the
    /// attribute goes into a capability frame written, and synced, with the records frame.
    pub fn push_with_capability(&mut self, record: RecordRef<'_>, value: &[u8]) {
        debug_assert!(!value.is_empty() && value.len() <= MAX_CAPABILITY);
        if self.capabilities.is_empty() {
            self.capabilities
                .extend_from_slice(&[KIND_CAPABILITIES, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        push_capability(&mut self.capabilities, record.dev, record.ino, record.path, value);
        self.capability_count += 1;
        self.push(record);
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
        let mut capabilities = std::mem::take(&mut self.capabilities);
        if !capabilities.is_empty() {
            seal_frame(&mut capabilities, std::mem::take(&mut self.capability_count));
        }
        SealedBatch {
            frame,
            records,
            spelled,
            capabilities,
        }
    }
}

/// Patch a frame's payload length and count (bytes 1 to 9) and append its checksum.
fn seal_frame(frame: &mut Vec<u8>, count: u32) {
    let payload_len = u32::try_from(frame.len() - FRAME_HEAD).expect("frame under 4 GiB");
    frame[1..5].copy_from_slice(&payload_len.to_le_bytes());
    frame[5..9].copy_from_slice(&count.to_le_bytes());
    let crc = crc32(frame);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// A finished records frame, ready to be appended.
pub struct SealedBatch {
    frame: Vec<u8>,
    records: u32,
    /// Its paths' bytes, spelled out.
    spelled: usize,
    /// The capability frame to write before the records frame (empty: none).
    capabilities: Vec<u8>,
}

#[cfg(test)]
impl SealedBatch {
    pub(crate) fn into_frame(self) -> Vec<u8> {
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
    /// A file this writer made: the first append syncs it and its directory entry at once.
    new_file_unsynced: bool,
    /// An existing journal of an older format version: its header is brought up to date
    /// before the first frame is appended (not before: a run that changes nothing leaves
    /// the journal as it was).
    older_version: bool,
}

/// The slow part of opening a journal, left to [`JournalWriter::prepare`] so that it can run
/// on the syncing thread while the walk starts.
enum Preparation {
    /// Existing frames not read back yet.
    Existing,
    Done,
    Failed(String),
}

impl JournalWriter {
    /// Open (creating, mode 0600) the journal for a root; the session frame is written with
    /// the first batch, so a run that changes nothing leaves the journal as it was. Only the
    /// file's mode and owner are checked here: nothing is appended before [`Self::prepare`]
    /// has read the existing frames back.
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
            new_file_unsynced: false,
            older_version: false,
        };
        if meta.len() == 0 {
            // Nothing to read back; its sync comes with the first frames.
            writer.file.write_all(MAGIC)?;
            writer.good_len = MAGIC.len() as u64;
            writer.preparation = Preparation::Done;
            writer.new_file_unsynced = true;
        }
        Ok(writer)
    }

    /// Make the journal ready for frames: read an existing journal back, refusing one that
    /// is damaged and cutting a torn tail left by a crash (appending after it would turn it
    /// into corruption mid-file); a new file needs nothing. Runs once; later calls give the
    /// same outcome, and appending calls it first.
    pub fn prepare(&mut self) -> Result<()> {
        let result = match self.preparation {
            Preparation::Done => return Ok(()),
            Preparation::Failed(ref reason) => bail!("{reason}"),
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

    /// Sync what was written: the data alone, or, the first time for a file this writer
    /// created, the whole file and its directory entry (which must survive a crash too).
    fn sync_written(&mut self) -> io::Result<()> {
        if !self.new_file_unsynced {
            return self.file.sync_data();
        }
        self.file.sync_all()?;
        if let Some(parent) = self.path.parent() {
            File::open(parent)?.sync_all()?;
        }
        self.new_file_unsynced = false;
        Ok(())
    }

    fn check_existing(&mut self) -> Result<()> {
        let path = self.path.display();
        let mut reader = FrameReader::new(io::BufReader::with_capacity(1 << 16, &self.file))
            .map_err(|e| anyhow::anyhow!("{path}: journal {e}"))?
            .checking_only();
        while reader
            .next_frame()
            .map_err(|e| {
                let undo = crate::hints::undo_bare();
                anyhow::anyhow!("{path}: journal {e}; run `{undo}` or move it away")
            })?
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
                || batch.capabilities.len() > MAX_PAYLOAD as usize
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
        let mut out = Vec::with_capacity(
            batches
                .iter()
                .map(|b| b.frame.len() + b.capabilities.len())
                .sum::<usize>()
                + 256,
        );
        if let Some(session) = self.session.take() {
            out.extend_from_slice(&encode_frame(&Frame::Session(session)));
        }
        for batch in batches {
            // Capabilities first: after a crash, a records frame is never on disk without
            // the capabilities of its files.
            out.extend_from_slice(&batch.capabilities);
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
        let result = self.write_limited(frames).and_then(|()| self.sync_written());
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::ownership::journal::testdata::*;
    use crate::ownership::journal::{for_each_batch, parse, summarize};

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
    fn a_version_1_journal_is_marked_current_before_compact_frames_join_it() {
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
    fn a_version_2_journal_is_marked_version_3_and_capabilities_precede_their_records() {
        use crate::ownership::journal::Capability;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = sample();
        bytes[15] = 2;
        fs::write(&path, &bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let mut writer = JournalWriter::open(&path, session(), None).unwrap();
        let mut batch = RecordBatch::default();
        let capable = record(b"bin/ping");
        batch.add(&record(b"bin"));
        batch.push_with_capability(capable.borrowed(), b"\x01\x00\x00\x02");
        writer.commit_batch(&mut batch).unwrap();
        // A batch without capabilities writes no capability frame.
        batch.add(&record(b"later"));
        writer.commit_batch(&mut batch).unwrap();
        let marked = fs::read(&path).unwrap();
        assert_eq!(marked[15], 3);
        assert_eq!(marked[16..bytes.len()], bytes[16..]);
        let (frames, tail) = parse(&marked).unwrap();
        assert_eq!(tail, Tail::Clean);
        let old = parse(&bytes).unwrap().0.len();
        assert_eq!(
            frames[old + 1..],
            [
                Frame::Capabilities(vec![Capability {
                    dev: capable.dev,
                    ino: capable.ino,
                    path: capable.path.clone(),
                    value: b"\x01\x00\x00\x02".to_vec(),
                }]),
                Frame::Records(vec![record(b"bin"), capable]),
                Frame::Records(vec![record(b"later")]),
            ]
        );
        let summary = summarize(&path).unwrap();
        assert_eq!(summary.sessions.last().unwrap().capabilities, 1);
        assert_eq!(summary.sessions.last().unwrap().records, 3);
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
}

//! Reading journals back: summaries, and a session's records batch by batch.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::format::{Capability, Frame, FrameReader, MAGIC, Record, SessionInfo, Tail, path_problem};

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
    /// Files whose capabilities it journaled.
    #[serde(skip_serializing_if = "is_zero")]
    pub capabilities: u64,
    /// Whether the run got to its end frame (false after a crash or kill).
    pub finished: bool,
    /// The entries its end frame says the run changed.
    #[serde(skip)]
    pub declared: Option<u64>,
    /// The root's own record (its state before this run), if the run changed the root.
    #[serde(skip)]
    pub root_entry: Option<Record>,
}

/// Open a journal for reading: never through a link, and only one that nobody but its
/// owner (root or the invoking user) can write.
fn open_journal(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("{}: cannot open the journal", path.display()))?;
    let meta = file.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || !super::store::trusted_owner(meta.uid()) || meta.mode() & 0o022 != 0 {
        bail!(
            "{}: journal is not a regular file owned by UID {euid} (or root) and writable by it alone (UID {}, mode {:o}); refusing to trust it",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    Ok(file)
}

/// Read a journal file's sessions and check every frame, and every recorded path.
pub fn summarize(path: &Path) -> Result<JournalSummary> {
    let file = open_journal(path)?;
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
                capabilities: 0,
                finished: false,
                declared: None,
                root_entry: None,
            }),
            Some(Frame::Records(records)) => {
                check_paths(path, offset, "entry", records.iter().map(|r| r.path.as_slice()))?;
                let Some(session) = sessions.last_mut() else {
                    bail!(
                        "{}: journal corrupt at byte {offset}: records before any session",
                        path.display()
                    )
                };
                session.records += records.len() as u64;
                if session.root_entry.is_none() {
                    session.root_entry = records.iter().find(|r| r.path.is_empty()).cloned();
                }
            }
            Some(Frame::Capabilities(capabilities)) => {
                check_paths(
                    path,
                    offset,
                    "capability",
                    capabilities.iter().map(|c| c.path.as_slice()),
                )?;
                let Some(session) = sessions.last_mut() else {
                    bail!(
                        "{}: journal corrupt at byte {offset}: capabilities before any session",
                        path.display()
                    )
                };
                session.capabilities += capabilities.len() as u64;
            }
            Some(Frame::End(end)) => {
                if let Some(session) = sessions.last_mut() {
                    session.finished = true;
                    session.declared = Some(end.changed);
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

/// The first run a journal records (its session frame), read without going further.
pub fn first_session(path: &Path) -> Result<Option<SessionInfo>> {
    let file = open_journal(path)?;
    let mut reader = FrameReader::new(io::BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?;
    match reader.next_frame() {
        Ok(Some(Frame::Session(info))) => Ok(Some(info)),
        Ok(_) => Ok(None),
        Err(e) => bail!("{}: journal {e}", path.display()),
    }
}

/// Refuse a frame holding a path that could lead outside the root; `what` names the kind
/// of entry (`entry`, `capability`) and `paths` are its entries' paths.
fn check_paths<'a>(
    path: &Path,
    offset: u64,
    what: &str,
    paths: impl IntoIterator<Item = &'a [u8]>,
) -> Result<()> {
    for entry in paths {
        if let Some(problem) = path_problem(entry) {
            bail!(
                "{}: journal corrupt at byte {offset}: {what} path {:?} {problem}",
                path.display(),
                String::from_utf8_lossy(&entry[..entry.len().min(64)])
            );
        }
    }
    Ok(())
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl JournalSummary {
    /// What `undo` needs beyond well-formed frames: at least one records frame, and every
    /// run that got to its end frame holding as many entries as that frame says. A journal
    /// cut before its first complete records frame, or missing frames, is refused (and
    /// kept). A run cut short before its first records frame, after earlier complete ones,
    /// is the trace of a crash before that run changed anything: it is passed over.
    pub fn check_complete(&self) -> Result<()> {
        let file = self.file.display();
        if self.sessions.is_empty() {
            let size = std::fs::metadata(&self.file).map_or(0, |m| m.len());
            bail!(
                "{file}: journal ends before its first complete frame ({size} bytes, the header is {}); it is kept",
                MAGIC.len()
            );
        }
        if let Some(first) = self
            .sessions
            .first()
            .filter(|_| self.sessions.iter().all(|s| s.records == 0))
        {
            bail!(
                "{file}: journal ends inside the first records frame of the run started at byte {}; it is kept",
                first.offset
            );
        }
        for session in &self.sessions {
            if let Some(declared) = session.declared.filter(|&d| d != session.records) {
                bail!(
                    "{file}: journal frames do not cover the run started at byte {}: {} of {declared} entries recorded; it is kept",
                    session.offset,
                    session.records
                );
            }
        }
        Ok(())
    }
}

/// Stream the records of the session starting at `offset`, batch by batch.
pub fn for_each_batch(
    path: &Path,
    offset: u64,
    mut visit: impl FnMut(&[Record]) -> Result<()>,
) -> Result<()> {
    for_each_session_frame(path, offset, true, |frame, after| match frame {
        Frame::Records(records) => {
            check_paths(path, after, "entry", records.iter().map(|r| r.path.as_slice()))?;
            visit(&records)
        }
        _ => Ok(()),
    })
}

/// Stream the file capabilities the session starting at `offset` journaled.
pub fn for_each_capability(
    path: &Path,
    offset: u64,
    mut visit: impl FnMut(&Capability) -> Result<()>,
) -> Result<()> {
    for_each_session_frame(path, offset, false, |frame, after| match frame {
        Frame::Capabilities(capabilities) => {
            check_paths(
                path,
                after,
                "capability",
                capabilities.iter().map(|c| c.path.as_slice()),
            )?;
            capabilities.iter().try_for_each(&mut visit)
        }
        _ => Ok(()),
    })
}

/// Visit the frames of the session starting at `offset` (not its session or end frame),
/// each with the offset just after it. Record frames are decoded only if `records`.
fn for_each_session_frame(
    path: &Path,
    offset: u64,
    records: bool,
    mut visit: impl FnMut(Frame, u64) -> Result<()>,
) -> Result<()> {
    let mut file = open_journal(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = FrameReader::resume(io::BufReader::new(file), offset);
    if !records {
        reader = reader.checking_only();
    }
    let mut started = false;
    while let Some(frame) = reader
        .next_frame()
        .map_err(|e| anyhow::anyhow!("{}: journal {e}", path.display()))?
    {
        match frame {
            Frame::Session(_) if started => break,
            Frame::Session(_) => started = true,
            Frame::End(_) => break,
            frame => visit(frame, reader.offset())?,
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
    let mut file = open_journal(path)?;
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
                Some(Frame::Records(records)) => {
                    check_paths(
                        path,
                        reader.offset(),
                        "entry",
                        records.iter().map(|r| r.path.as_slice()),
                    )?;
                    rest.extend(records);
                }
                Some(Frame::Capabilities(_)) => {}
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

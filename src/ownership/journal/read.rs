//! Reading journals back: summaries, and a session's records batch by batch.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::format::{Frame, FrameReader, Record, SessionInfo, Tail};

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

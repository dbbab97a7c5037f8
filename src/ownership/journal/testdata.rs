//! Journals for the unit tests.

use super::format::{Frame, KIND_RECORDS, MAGIC, Record, SessionEnd, SessionInfo, encode_frame, frame_of};

pub(crate) fn session() -> SessionInfo {
    SessionInfo {
        tool: "flowerbed test".into(),
        command: "own".into(),
        started: 1,
        root: "/srv/certs".into(),
        root_dev: 7,
        root_ino: 9,
        uid: 49_999,
        gid: 49_999,
        identity: None,
    }
}

pub(crate) fn record(path: &[u8]) -> Record {
    Record {
        dev: 7,
        ino: 100 + path.len() as u64,
        uid: 0,
        gid: 0,
        mode: 0o104_755,
        path: path.to_vec(),
    }
}

pub(crate) fn sample() -> Vec<u8> {
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
pub(crate) fn frame_v1(records: &[Record]) -> Vec<u8> {
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

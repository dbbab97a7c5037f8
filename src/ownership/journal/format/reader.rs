//! The streaming reader: the same decoding as [`super::parse`], without holding a large
//! journal in memory.

use std::io::{self, Read};

use super::{
    Corrupt, Decoded, FRAME_HEAD, FRAME_TAIL, Frame, MAGIC, MAX_PAYLOAD, Tail, check_header,
    decode_frame_keeping,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::journal::testdata::*;
    use crate::ownership::journal::{KIND_CAPABILITIES, KIND_END, KIND_RECORDS, KIND_SESSION, parse};

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
                Frame::Capabilities(_) => KIND_CAPABILITIES,
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

    proptest::proptest! {
        #[test]
        fn checking_only_agrees_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut input = sample();
            input.extend(bytes);
            proptest::prop_assert_eq!(outline(&input, true), outline(&input, false));
        }
    }
}

//! The disk buffer: records waiting for a JetStream acknowledgement, in
//! append-only segment files `<first seq, 20 digits>.seg` of
//! [`frame`](super::frame)s, plus `acked`, the last acknowledged sequence
//! number. The writer appends, the publisher reads in order and acknowledges;
//! segments wholly acknowledged are deleted.
//!
//! Sequence numbers never repeat (they make the `Nats-Msg-Id`): the next one
//! is one past the highest in a segment or in `acked`, so `acked` is written
//! before any segment is deleted.

use super::frame::{self, HEADER};
use super::segment::scan;
use nix::fcntl::{Flock, FlockArg};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A new segment is started past this size.
const SEGMENT_BYTES: u64 = 16 << 20;
/// A wholly acknowledged segment being written to is replaced once this big,
/// so a healthy NATS keeps the buffer near empty without a file per record.
const ROLL_ACKED: u64 = 1 << 20;
/// The staging buffer is given back once it grew past this.
const SCRATCH_KEEP: usize = 4 << 20;

/// One segment file.
#[derive(Debug)]
struct Segment {
    first_seq: u64,
    records: u64,
    len: u64,
    path: PathBuf,
}

/// Where the publisher is: the next frame to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPos {
    /// The segment (by its first sequence number).
    pub(super) segment: u64,
    /// Byte offset in it.
    pub(super) offset: u64,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its sequence number.
    pub(crate) seq: u64,
    /// The formatted record.
    pub(crate) payload: bytes::Bytes,
    /// The position just after it.
    pub(crate) end: ReadPos,
}

/// Result of [`DiskBuffer::append`].
#[derive(Debug)]
pub(crate) struct Appended {
    /// Records (a prefix of those passed) now in the buffer.
    pub(crate) count: usize,
    /// Why the others are not: `None` when the buffer is full.
    pub(crate) error: Option<io::Error>,
}

/// What [`DiskBuffer::open`] found and repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Records not yet acknowledged.
    pub(crate) records: u64,
    /// Bytes cut from segment tails (a frame half-written at a crash, or damage).
    pub(crate) cut_bytes: u64,
}

/// The buffer's state; the writer and the publisher share it behind a mutex.
#[derive(Debug)]
pub(crate) struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; the last one is appended to while `active` is open.
    segments: VecDeque<Segment>,
    active: Option<File>,
    next_seq: u64,
    acked: u64,
    /// Bytes of acknowledged frames at the start of the oldest segment.
    acked_offset: u64,
    total: u64,
    scratch: Vec<u8>,
    /// Held while open: two processes on one buffer would reuse numbers.
    _lock: Flock<File>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`, holding at most `max_bytes`;
    /// cuts a damaged or half-written tail off each segment.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<(Self, Recovered)> {
        Self::open_with(dir, max_bytes, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<(Self, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
        let lock = lock(dir)?;
        let acked = read_acked(dir)?;
        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(n);
            }
        }
        firsts.sort_unstable();
        let mut b = Self {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments: VecDeque::new(),
            active: None,
            next_seq: acked.saturating_add(1),
            acked,
            acked_offset: 0,
            total: 0,
            scratch: Vec::new(),
            _lock: lock,
        };
        let mut recovered = Recovered::default();
        for first in firsts {
            let path = dir.join(segment_name(first));
            let (records, len, cut, acked_end) = scan(&path, first, acked)?;
            recovered.cut_bytes += cut;
            b.next_seq = b.next_seq.max(first.saturating_add(records));
            if records == 0 || first.saturating_add(records) <= acked.saturating_add(1) {
                // Empty, or acknowledged in full before the stop.
                fs::remove_file(&path)?;
                continue;
            }
            if b.segments.is_empty() {
                b.acked_offset = acked_end;
            }
            b.total += len;
            b.segments.push_back(Segment {
                first_seq: first,
                records,
                len,
                path,
            });
        }
        recovered.records = b.next_seq - 1 - acked.min(b.next_seq - 1);
        Ok((b, recovered))
    }

    /// Bytes not yet acknowledged.
    pub(crate) fn unacked_bytes(&self) -> u64 {
        self.total.saturating_sub(self.acked_offset)
    }

    /// The last sequence number acknowledged.
    #[cfg(test)]
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Appends `payloads` in order with the next sequence numbers, as many
    /// as fit (all with `force`, which shutdown uses so nothing is lost).
    pub(crate) fn append(&mut self, payloads: &[&[u8]], force: bool) -> Appended {
        let mut count = 0;
        while count < payloads.len() {
            match self.append_chunk(payloads.get(count..).unwrap_or(&[]), force) {
                Ok(0) => return Appended { count, error: None },
                Ok(n) => count += n,
                Err(e) => {
                    return Appended {
                        count,
                        error: Some(e),
                    }
                }
            }
        }
        Appended { count, error: None }
    }

    /// Writes as many of `payloads` as fit into the current segment with one
    /// write; returns how many.
    fn append_chunk(&mut self, payloads: &[&[u8]], force: bool) -> io::Result<usize> {
        let Some(first) = payloads.first() else {
            return Ok(0);
        };
        let frame_len = (HEADER + first.len()) as u64;
        // One record larger than the whole buffer still goes in alone.
        let unacked = self.unacked_bytes();
        if !force && unacked > 0 && unacked + frame_len > self.max_bytes {
            return Ok(0);
        }
        if self.active.is_none()
            || self
                .segments
                .back()
                .is_some_and(|s| s.len > 0 && s.len + frame_len > self.segment_bytes)
        {
            self.start_segment()?;
        }
        let Some(seg) = self.segments.back_mut() else {
            return Ok(0);
        };
        let Some(file) = self.active.as_mut() else {
            return Ok(0);
        };
        self.scratch.clear();
        let mut n = 0;
        let mut unacked = unacked;
        for p in payloads {
            let size = (HEADER + p.len()) as u64;
            let fits_segment =
                n == 0 || seg.len + self.scratch.len() as u64 + size <= self.segment_bytes;
            if !fits_segment || (n > 0 && !force && unacked + size > self.max_bytes) {
                break;
            }
            frame::encode(self.next_seq + n as u64, p, &mut self.scratch);
            unacked += size;
            n += 1;
        }
        if let Err(e) = file.write_all(&self.scratch) {
            // Cut what was partly written, so the segment stays a clean
            // sequence of frames for the next try.
            let _ = file.set_len(seg.len);
            return Err(e);
        }
        let written = self.scratch.len() as u64;
        seg.len += written;
        seg.records += n as u64;
        self.total += written;
        self.next_seq += n as u64;
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        Ok(n)
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let path = self.dir.join(segment_name(self.next_seq));
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)?;
        // A leftover file of this name (an empty segment from a crash) is reused.
        let len = file.metadata()?.len();
        if len > 0 {
            file.set_len(0)?;
        }
        self.active = Some(file);
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            records: 0,
            len: 0,
            path,
        });
        Ok(())
    }

    /// Where reading starts: the first record not yet acknowledged.
    pub(crate) fn start(&self) -> ReadPos {
        match self.segments.front() {
            Some(s) => ReadPos {
                segment: s.first_seq,
                offset: self.acked_offset,
            },
            None => ReadPos {
                segment: self.next_seq,
                offset: 0,
            },
        }
    }

    /// What to read next from `pos`: (file, from, to, position of `to`'s
    /// segment); `None` when everything has been read.
    pub(super) fn plan(&self, pos: ReadPos) -> Option<(PathBuf, u64, u64, u64)> {
        for s in &self.segments {
            if s.first_seq < pos.segment {
                continue;
            }
            let from = if s.first_seq == pos.segment {
                pos.offset
            } else {
                0
            };
            if from < s.len {
                return Some((s.path.clone(), from, s.len, s.first_seq));
            }
        }
        None
    }

    /// Records `seq` (and all before it) as acknowledged, `end` being the
    /// position after it; deletes the segments now wholly acknowledged.
    pub(crate) fn ack(&mut self, seq: u64, end: ReadPos) -> io::Result<()> {
        if seq <= self.acked {
            return Ok(());
        }
        let mut doomed = Vec::new();
        while let Some(s) = self.segments.front() {
            let is_active = self.segments.len() == 1 && self.active.is_some();
            let done =
                s.first_seq < end.segment || (s.first_seq == end.segment && end.offset >= s.len);
            let keep_active = is_active && s.len < ROLL_ACKED;
            if !done || keep_active {
                break;
            }
            if is_active {
                self.active = None;
            }
            if let Some(s) = self.segments.pop_front() {
                self.total -= s.len;
                doomed.push(s.path);
            }
        }
        self.acked_offset = match self.segments.front() {
            Some(s) if s.first_seq == end.segment => end.offset,
            _ => 0,
        };
        self.acked = seq;
        write_acked(&self.dir, seq, !doomed.is_empty())?;
        for p in doomed {
            fs::remove_file(p)?;
        }
        Ok(())
    }

    /// Makes what was appended durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.active.as_ref().map_or(Ok(()), File::sync_data)
    }
}

/// Takes `dir/lock` exclusively, or fails when another process has it.
fn lock(dir: &Path) -> io::Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .open(dir.join("lock"))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("in use by another process ({errno})"),
        )
    })
}

fn read_acked(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join("acked")) {
        Ok(s) => s.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a sequence number", dir.join("acked").display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Replaces `acked` atomically; `durable` (before deleting segments) fsyncs
/// it, since a lost cursor with its segments gone would reuse sequence numbers.
fn write_acked(dir: &Path, seq: u64, durable: bool) -> io::Result<()> {
    let tmp = dir.join("acked.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{seq}\n").as_bytes())?;
    if durable {
        f.sync_data()?;
    }
    fs::rename(&tmp, dir.join("acked"))
}

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;

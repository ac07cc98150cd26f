//! Reading segment files: the publisher's reads (whole frames up to the
//! length the writer has committed) and the check at start that cuts a
//! half-written or damaged tail.

use super::buffer::{DiskBuffer, Frame, ReadPos};
use super::frame::{self, Decoded, HEADER};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read from a segment at once.
const READ_CHUNK: u64 = 1 << 20;

/// Reads up to `max` records from `pos` (of `buffer`, locked only to plan).
pub(crate) fn read(
    buffer: &std::sync::Mutex<DiskBuffer>,
    mut pos: ReadPos,
    max: usize,
) -> io::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    while frames.len() < max {
        let plan = match buffer.lock() {
            Ok(b) => b.plan(pos),
            Err(p) => p.into_inner().plan(pos),
        };
        let Some((path, from, to, segment)) = plan else {
            break;
        };
        let mut file = File::open(&path)?;
        let mut at = from;
        let mut buf = read_range(&mut file, at, (to - at).min(READ_CHUNK))?;
        let mut used = 0;
        while frames.len() < max && at < to {
            match frame::decode(buf.get(used..).unwrap_or(&[])) {
                Decoded::Frame { seq, payload, size } => {
                    at += size as u64;
                    used += size;
                    frames.push(Frame {
                        seq,
                        payload: bytes::Bytes::copy_from_slice(payload),
                        end: ReadPos {
                            segment,
                            offset: at,
                        },
                    });
                }
                Decoded::Incomplete { size } => {
                    // Past the chunk: read on from here (the whole frame, when large).
                    let want = size.map_or(READ_CHUNK, |s| (s as u64).max(READ_CHUNK));
                    buf = read_range(&mut file, at, (to - at).min(want))?;
                    used = 0;
                    if buf.len() < HEADER || matches!(size, Some(s) if s as u64 > to - at) {
                        return Err(damaged(&path, at));
                    }
                }
                Decoded::Corrupt => return Err(damaged(&path, at)),
            }
        }
        pos = ReadPos {
            segment,
            offset: at,
        };
    }
    Ok(frames)
}

fn damaged(path: &Path, at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: damaged frame at byte {at}", path.display()),
    )
}

fn read_range(file: &mut File, at: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Checks a segment frame by frame: (records, intact length, bytes cut,
/// offset after the last frame numbered `acked` or lower). Everything after
/// the first bad or half-written frame is cut off, so appends and reads see
/// only whole frames.
pub(super) fn scan(path: &Path, first_seq: u64, acked: u64) -> io::Result<(u64, u64, u64, u64)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(READ_CHUNK as usize, &file);
    let mut records = 0u64;
    let mut good = 0u64;
    let mut acked_end = 0u64;
    let mut buf = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if read_full(&mut reader, &mut header)? < HEADER {
            break;
        }
        let len = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        if good + HEADER as u64 + len > size {
            break;
        }
        buf.clear();
        buf.extend_from_slice(&header);
        buf.resize(HEADER + len as usize, 0);
        if read_full(&mut reader, buf.get_mut(HEADER..).unwrap_or(&mut []))? < len as usize {
            break;
        }
        match frame::decode(&buf) {
            Decoded::Frame { seq, size, .. } if seq == first_seq + records => {
                records += 1;
                good += size as u64;
                if seq <= acked {
                    acked_end = good;
                }
            }
            _ => break,
        }
    }
    let cut = size - good;
    if cut > 0 {
        file.set_len(good)?;
    }
    Ok((records, good, cut, acked_end))
}

/// Reads until `buf` is full or the end; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

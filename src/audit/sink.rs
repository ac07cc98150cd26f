//! Where audit lines go: stdout, or a file rotated by size. Both run on the
//! blocking pool (see `writer.rs`), so plain `std::io` is right here.
//!
//! The writer decides where a file ends, as it serializes (it puts a signed
//! checkpoint there): it asks [`Sink::needs_rotation`] before each line and
//! marks the place with [`Sink::rotate_here`]; the file sink rotates when its
//! writing reaches a mark.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a failed rotation is left alone before it is tried again; the
/// file keeps growing meanwhile rather than the audit trail stopping.
const ROTATE_RETRY: Duration = Duration::from_secs(10);

/// An audit destination.
#[derive(Debug)]
pub(crate) enum Sink {
    /// `path = "-"`.
    Stdout,
    /// A file, appended to and rotated by size.
    File(FileSink),
}

impl Sink {
    /// Opens `path` (`-` = stdout); a file is created with mode 0640.
    pub(crate) fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Sink> {
        if path.as_os_str() == "-" {
            return Ok(Sink::Stdout);
        }
        let mut f = FileSink {
            path: path.to_owned(),
            file: None,
            size: 0,
            max_size: max_size.max(1),
            keep,
            rotate_after: None,
            planned: 0,
            marks: VecDeque::new(),
            written: 0,
            sync_on_rotate: false,
        };
        f.reopen()?;
        f.end_partial_line()?;
        f.planned = f.size;
        Ok(Sink::File(f))
    }

    /// Whether a line of `len` bytes, about to be queued, should start a new
    /// file: it would take the current one past `max_file_size` (and the
    /// current one holds something, and rotation is not failing).
    pub(crate) fn needs_rotation(&self, len: usize) -> bool {
        match self {
            Sink::Stdout => false,
            Sink::File(f) => {
                f.planned > 0 && f.planned.saturating_add(len as u64) > f.max_size && f.may_rotate()
            }
        }
    }

    /// Counts a queued line of `len` bytes into the current file.
    pub(crate) fn queued(&mut self, len: usize) {
        if let Sink::File(f) = self {
            f.planned = f.planned.saturating_add(len as u64);
        }
    }

    /// Rotates before byte `at` of what will be passed to the next
    /// [`Sink::write_pending`] (the bytes queued so far).
    pub(crate) fn rotate_here(&mut self, at: usize) {
        if let Sink::File(f) = self {
            f.marks.push_back(f.written.saturating_add(at as u64));
            f.planned = 0;
        }
    }

    /// Writes whole lines from the front of `pending`, removing what was
    /// written; on error the unwritten rest stays for the next try.
    pub(crate) fn write_pending(&mut self, pending: &mut Vec<u8>) -> io::Result<()> {
        let mut done = 0;
        let result = match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                write_tracked(&mut out, pending, &mut done).and_then(|()| out.flush())
            }
            Sink::File(f) => {
                let r = f.write_lines(pending, &mut done);
                f.written = f.written.saturating_add(done as u64);
                r
            }
        };
        pending.drain(..done);
        result
    }

    /// Fsyncs each file before it is rotated away, so a durability rule that
    /// fsyncs the current file also covers lines that went to the previous one.
    pub(crate) fn set_sync_on_rotate(&mut self, on: bool) {
        if let Sink::File(f) = self {
            f.sync_on_rotate = on;
        }
    }

    /// Makes what was written durable (fsync for a file).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::File(f) => f.file.as_ref().map_or(Ok(()), File::sync_data),
        }
    }
}

/// Writes `buf[*done..]`, advancing `done` byte by byte of progress so a
/// failed write is resumed exactly where it stopped (no line split or doubled).
fn write_tracked(w: &mut impl Write, buf: &[u8], done: &mut usize) -> io::Result<()> {
    while *done < buf.len() {
        match w.write(&buf[*done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A size-rotated file: `audit.log`, then `audit.log.1` (newest) ... `.N`.
#[derive(Debug)]
pub(crate) struct FileSink {
    path: PathBuf,
    /// None after a failed reopen; opened again on the next write.
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: u32,
    /// Set after a failed rotation: do not try again before then.
    rotate_after: Option<Instant>,
    /// Bytes the current file will hold once what is queued is written.
    planned: u64,
    /// Where to rotate, as offsets in everything ever passed to `write_pending`.
    marks: VecDeque<u64>,
    /// Bytes written so far: the offset of the next `write_pending`'s first byte.
    written: u64,
    /// fsync the file before rotating it (`audit.durability` is not `none`).
    sync_on_rotate: bool,
}

impl FileSink {
    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// A crash mid-write can leave a partial last line; ending it keeps the
    /// next line whole (verification then reports the cut one).
    fn end_partial_line(&mut self) -> io::Result<()> {
        if self.size == 0 {
            return Ok(());
        }
        let mut last = [0u8];
        let mut reader = File::open(&self.path)?;
        reader.seek(SeekFrom::Start(self.size - 1))?;
        reader.read_exact(&mut last)?;
        if last != *b"\n" {
            if let Some(f) = self.file.as_mut() {
                f.write_all(b"\n")?;
                self.size += 1;
            }
        }
        Ok(())
    }

    /// Writes `buf[*done..]`, rotating where the writer marked it.
    fn write_lines(&mut self, buf: &[u8], done: &mut usize) -> io::Result<()> {
        while *done < buf.len() {
            if self.file.is_none() {
                self.reopen()?;
            }
            let at = self.written.saturating_add(*done as u64);
            // Marks behind `at` cannot happen; dropping them keeps a bug harmless.
            while self.marks.front().is_some_and(|&m| m < at) {
                self.marks.pop_front();
            }
            if self.marks.front() == Some(&at) {
                self.marks.pop_front();
                self.rotate()?;
                continue;
            }
            let end = self
                .marks
                .front()
                .and_then(|&m| usize::try_from(m.saturating_sub(self.written)).ok())
                .map_or(buf.len(), |m| m.min(buf.len()));
            let Some(file) = self.file.as_mut() else {
                continue;
            };
            let before = *done;
            let r = write_tracked(file, buf.get(..end).unwrap_or(buf), done);
            self.size += (*done - before) as u64;
            r?;
        }
        Ok(())
    }

    fn may_rotate(&self) -> bool {
        self.rotate_after.is_none_or(|t| Instant::now() >= t)
    }

    /// `audit.log.{k}` → `.{k+1}` (the oldest is overwritten), `audit.log` →
    /// `.1`, then a fresh `audit.log`.
    fn rotate(&mut self) -> io::Result<()> {
        // No fsync here: forcing 100 MiB to disk would stall the writer for
        // as long as the disk takes, and an appended log is no more at risk
        // after a rename than before it; the kernel writes it back as usual.
        // Unless a durability rule promises its lines are on disk: then the
        // batch's one fsync, which reaches only the new file, needs this.
        if self.sync_on_rotate {
            if let Some(f) = &self.file {
                f.sync_data()?;
            }
        }
        let numbered = |k: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{k}"));
            PathBuf::from(p)
        };
        for k in (1..self.keep).rev() {
            match std::fs::rename(numbered(k), numbered(k + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return self.rotation_failed(e),
                _ => {}
            }
        }
        if let Err(e) = std::fs::rename(&self.path, numbered(1)) {
            return self.rotation_failed(e);
        }
        self.rotate_after = None;
        self.file = None;
        self.size = 0;
        self.reopen()
    }

    fn rotation_failed(&mut self, e: io::Error) -> io::Result<()> {
        tracing::error!(path = %self.path.display(), error = %e,
            "audit log rotation failed; appending to the current file, retrying in {}s",
            ROTATE_RETRY.as_secs());
        self.rotate_after = Some(Instant::now() + ROTATE_RETRY);
        // What was planned for the next file goes on in this one.
        self.planned = self.planned.saturating_add(self.size);
        Ok(())
    }
}

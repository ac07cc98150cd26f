//! Where audit lines go: stdout, or a file rotated by size. Both run on the
//! blocking pool (see `writer.rs`), so plain `std::io` is right here.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
        };
        f.reopen()?;
        Ok(Sink::File(f))
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
            Sink::File(f) => f.write_lines(pending, &mut done),
        };
        pending.drain(..done);
        result
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

    /// Writes `buf[*done..]`, rotating between lines so that no file grows
    /// past `max_size` unless one line alone is larger.
    fn write_lines(&mut self, buf: &[u8], done: &mut usize) -> io::Result<()> {
        while *done < buf.len() {
            if self.file.is_none() {
                self.reopen()?;
            }
            let rest = &buf[*done..];
            let room =
                usize::try_from(self.max_size.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let len = if rest.len() <= room {
                rest.len()
            } else if let Some(i) = rest[..room].iter().rposition(|&b| b == b'\n') {
                i + 1
            } else if self.size == 0 {
                // One line larger than a whole file: it gets a file of its own.
                rest.iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1)
            } else if self.may_rotate() {
                self.rotate()?;
                continue;
            } else {
                // Rotation is failing: keep appending rather than lose records.
                rest.len()
            };
            let Some(file) = self.file.as_mut() else {
                continue;
            };
            let mut written = 0;
            let r = write_tracked(file, &rest[..len], &mut written);
            *done += written;
            self.size += written as u64;
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
        Ok(())
    }
}

//! Reading audit files line by line into an [`Aggregator`]. A line that is
//! not a record (damaged, cut short by a crash, not JSON) is counted and
//! shown in the report rather than stopping it: one bad line must not hide
//! a month of activity.

use super::aggregate::Aggregator;
use super::input::{parse_line, LineError};
use super::ReportError;
use std::io::BufRead;
use std::path::Path;

/// Feeds every line of `path` to `agg`.
pub fn read_file(path: &Path, agg: &mut Aggregator) -> Result<(), ReportError> {
    let err = |source| ReportError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    agg.file(path.display().to_string());
    read_lines(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        agg,
    )
    .map_err(err)
}

/// Feeds every line of `input` to `agg`; `name` labels malformed lines.
pub fn read_lines(
    mut input: impl BufRead,
    name: &str,
    agg: &mut Aggregator,
) -> std::io::Result<()> {
    // Bytes, not `lines()`: invalid UTF-8 is one malformed line, not an I/O error.
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(entry) => agg.add(entry),
            Err(LineError::Json(e)) => agg.malformed(format!("{name}:{number}: {e}")),
            Err(LineError::Timestamp) => {
                agg.malformed(format!("{name}:{number}: no valid @timestamp"))
            }
        }
    }
}

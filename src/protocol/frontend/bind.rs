//! Bind ('B'): which prepared statement a portal runs, and the result
//! formats the client asked for (masking must write cells in them).

use crate::protocol::{ProtocolError, Reader};

/// The parts of a Bind that pgwarden needs; parameter values are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name ("" = unnamed).
    pub portal: &'a str,
    /// Prepared statement name ("" = unnamed).
    pub statement: &'a str,
    /// Result format codes: none = all text, one = for all columns, else per column.
    pub result_formats: Vec<i16>,
}

impl<'a> Bind<'a> {
    /// Parses a Bind body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "Bind");
        let portal = r.string()?;
        let statement = r.string()?;
        let n = count(&mut r)?;
        r.bytes(n * 2)?;
        let params = count(&mut r)?;
        for _ in 0..params {
            let len = r.i32()?;
            if len > 0 {
                r.bytes(len as usize)?;
            }
        }
        let n = count(&mut r)?;
        let mut result_formats = Vec::with_capacity(n);
        for _ in 0..n {
            result_formats.push(r.i16()?);
        }
        Ok(Self {
            portal,
            statement,
            result_formats,
        })
    }
}

/// Parameter `index` (0-based) of a Bind body: its value (`None` = NULL)
/// and whether it is sent in binary; `None` when absent or malformed.
pub fn param(body: &[u8], index: usize) -> Option<(Option<&[u8]>, bool)> {
    let mut r = Reader::new(body, "Bind");
    r.string().ok()?;
    r.string().ok()?;
    let n = count(&mut r).ok()?;
    let mut formats = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        formats.push(r.i16().ok()?);
    }
    let params = count(&mut r).ok()?;
    if index >= params {
        return None;
    }
    for i in 0..params {
        let len = r.i32().ok()?;
        let value = match usize::try_from(len) {
            Ok(len) => Some(r.bytes(len).ok()?),
            Err(_) => None,
        };
        if i == index {
            return Some((value, is_binary(&formats, i)));
        }
    }
    None
}

fn count(r: &mut Reader<'_>) -> Result<usize, ProtocolError> {
    let n = r.i16()?;
    usize::try_from(n).map_err(|_| ProtocolError::Malformed("Bind"))
}

/// Whether result column `i` is sent in binary, given Bind's format codes.
pub fn is_binary(formats: &[i16], i: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(i) == Some(&1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_result_formats_past_parameters() {
        let mut b = Vec::new();
        b.extend_from_slice(b"p1\0s1\0");
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        let bind = Bind::parse(&b).unwrap();
        assert_eq!((bind.portal, bind.statement), ("p1", "s1"));
        assert_eq!(bind.result_formats, vec![0, 1]);
        assert!(is_binary(&bind.result_formats, 1) && !is_binary(&bind.result_formats, 0));
        assert!(Bind::parse(&b[..b.len() - 1]).is_err());
    }
}

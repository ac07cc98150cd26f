//! RowDescription ('T'): the type and format of each result column, which
//! masking needs to write a cell the client can still decode.

use crate::protocol::{ProtocolError, Reader};

/// One column: where it comes from, its type and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Table oid (0 when not a plain column).
    pub table_oid: u32,
    /// Attribute number (0 when not a plain column).
    pub attnum: i16,
    /// Type oid.
    pub type_oid: u32,
    /// 0 = text, 1 = binary.
    pub format: i16,
}

/// Parses a RowDescription body.
pub fn parse(body: &[u8]) -> Result<Vec<Field>, ProtocolError> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.i16()?;
    let n = usize::try_from(n).map_err(|_| ProtocolError::Malformed("RowDescription"))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        r.cstr()?;
        let table_oid = r.i32()? as u32;
        let attnum = r.i16()?;
        let type_oid = r.i32()? as u32;
        r.i16()?;
        r.i32()?;
        let format = r.i16()?;
        out.push(Field {
            table_oid,
            attnum,
            type_oid,
            format,
        });
    }
    Ok(out)
}

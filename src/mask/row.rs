//! Rewriting whole DataRow messages: unmasked cells are copied in runs,
//! masked ones are rewritten in place in the output buffer.

use super::{mask_cell_into, CellMask, HashKey, MaskError};
use bytes::{BufMut, BytesMut};

/// Rewrites one DataRow and appends the complete message to `out`.
///
/// `body` is the message body after the 5-byte header: an i16 column count,
/// then per column an i32 length (-1 = NULL) and that many bytes. `plan[i]`
/// is `Some(mask)` for masked columns; the others are copied unchanged. What
/// is appended is `'D'`, the i32 length (counting itself), and the new body.
/// A malformed body, or one whose column count differs from the plan's, is
/// an error, never a panic; `out` is then left as it was.
pub fn rewrite_data_row(
    body: &[u8],
    plan: &[Option<CellMask>],
    key: &HashKey,
    out: &mut BytesMut,
) -> Result<(), MaskError> {
    let start = out.len();
    let r = write_row(body, plan, key, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn write_row(
    body: &[u8],
    plan: &[Option<CellMask>],
    key: &HashKey,
    out: &mut BytesMut,
) -> Result<(), MaskError> {
    let count = body
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .map(i16::from_be_bytes)
        .ok_or(MaskError::MalformedDataRow("no column count"))?;
    let count =
        usize::try_from(count).map_err(|_| MaskError::MalformedDataRow("negative column count"))?;
    if count != plan.len() {
        return Err(MaskError::ColumnCount {
            row: count,
            plan: plan.len(),
        });
    }
    // Masked values are rarely longer than the originals.
    out.reserve(body.len() + 5 + 16 * plan.len());
    let msg_start = out.len();
    out.put_u8(b'D');
    out.put_i32(0); // patched below
    let mut pos = 2;
    let mut copied = 0; // body[..copied] is in `out` already
    for mask in plan {
        let cell_start = pos;
        let len = body
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or(MaskError::MalformedDataRow("truncated cell length"))?;
        pos += 4;
        let value = match len {
            -1 => None,
            n => {
                let n = usize::try_from(n)
                    .map_err(|_| MaskError::MalformedDataRow("negative cell length"))?;
                let v = body
                    .get(pos..pos.saturating_add(n))
                    .ok_or(MaskError::MalformedDataRow("truncated cell"))?;
                pos += n;
                Some(v)
            }
        };
        if let Some(mask) = mask {
            out.put_slice(body.get(copied..cell_start).unwrap_or_default());
            write_cell(mask, key, value, out)?;
            copied = pos;
        }
    }
    if pos != body.len() {
        return Err(MaskError::MalformedDataRow("bytes after the last cell"));
    }
    out.put_slice(body.get(copied..).unwrap_or_default());
    // The message length counts itself but not the type byte.
    set_i32(out, msg_start + 1, out.len() - msg_start - 1)
}

/// Appends one masked cell: length word, then the value (or -1 for NULL).
fn write_cell(
    mask: &CellMask,
    key: &HashKey,
    value: Option<&[u8]>,
    out: &mut BytesMut,
) -> Result<(), MaskError> {
    let Some(value) = value else {
        out.put_i32(-1);
        return Ok(());
    };
    let len_at = out.len();
    out.put_i32(0);
    if mask_cell_into(mask, key, value, out) {
        // A cell's length word does not count itself.
        set_i32(out, len_at, out.len() - len_at - 4)
    } else {
        out.truncate(len_at);
        out.put_i32(-1);
        Ok(())
    }
}

/// Sets the length word at `at` to `n`.
fn set_i32(out: &mut BytesMut, at: usize, n: usize) -> Result<(), MaskError> {
    let n = i32::try_from(n).map_err(|_| MaskError::TooLarge)?;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

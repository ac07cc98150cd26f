//! Reading and writing integer and floating-point cells in both encodings:
//! text is PostgreSQL's output syntax, binary is big-endian.

use super::oid::IntType;
use bytes::{BufMut, BytesMut};
use std::fmt::Write;

/// An integer cell of type `t`; `None` if it is not one.
pub(super) fn read_int(t: IntType, binary: bool, value: &[u8]) -> Option<i64> {
    if binary {
        return match t {
            IntType::I16 => Some(i16::from_be_bytes(value.try_into().ok()?).into()),
            IntType::I32 => Some(i32::from_be_bytes(value.try_into().ok()?).into()),
            IntType::I64 => Some(i64::from_be_bytes(value.try_into().ok()?)),
        };
    }
    let (neg, digits) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    let v = if neg { v } else { v.checked_neg()? };
    t.holds(v.into()).then_some(v)
}

/// Writes `v` as type `t`; `None` if it is out of the type's range.
pub(super) fn write_int(t: IntType, binary: bool, v: i128, out: &mut BytesMut) -> Option<()> {
    if !t.holds(v) {
        return None;
    }
    if binary {
        // `holds` checked the range, so the narrowing below is exact.
        match t {
            IntType::I16 => out.put_i16(v as i16),
            IntType::I32 => out.put_i32(v as i32),
            IntType::I64 => out.put_i64(v as i64),
        }
    } else {
        write!(out, "{v}").ok()?;
    }
    Some(())
}

/// A float cell (`single` = float4); `None` if it is not one.
pub(super) fn read_float(single: bool, binary: bool, value: &[u8]) -> Option<f64> {
    if binary {
        return if single {
            Some(f32::from_be_bytes(value.try_into().ok()?).into())
        } else {
            Some(f64::from_be_bytes(value.try_into().ok()?))
        };
    }
    let s = std::str::from_utf8(value).ok()?;
    if single {
        // Parse as float4 so the value is exactly the column's.
        s.parse::<f32>().ok().map(f64::from)
    } else {
        s.parse::<f64>().ok()
    }
}

/// Writes `v` as a float4 (`single`) or float8 cell.
pub(super) fn write_float(single: bool, binary: bool, v: f64, out: &mut BytesMut) -> Option<()> {
    if binary {
        if single {
            out.put_f32(v as f32);
        } else {
            out.put_f64(v);
        }
        return Some(());
    }
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v.is_infinite() {
        out.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else if single {
        write_shortest(v as f32, f64::from(v as f32).abs(), out)?;
    } else {
        write_shortest(v, v.abs(), out)?;
    }
    Some(())
}

/// The shortest text that reads back as `v`, with an exponent (as
/// PostgreSQL prints it) for very large or small magnitudes.
fn write_shortest<F>(v: F, magnitude: f64, out: &mut BytesMut) -> Option<()>
where
    F: std::fmt::Display + std::fmt::LowerExp,
{
    if magnitude == 0.0 || (1e-4..1e15).contains(&magnitude) {
        return write!(out, "{v}").ok();
    }
    // Rare magnitudes: the allocation does not matter.
    let s = format!("{v:e}");
    match s.split_once('e') {
        // Rust writes `1e300`; PostgreSQL writes `1e+300`. Both parse anywhere.
        Some((m, e)) if !e.starts_with('-') => write!(out, "{m}e+{e}").ok(),
        _ => {
            out.put_slice(s.as_bytes());
            Some(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_binary_ints() {
        assert_eq!(read_int(IntType::I32, false, b"42"), Some(42));
        assert_eq!(read_int(IntType::I32, false, b"-42"), Some(-42));
        assert_eq!(
            read_int(IntType::I64, false, b"-9223372036854775808"),
            Some(i64::MIN)
        );
        assert_eq!(
            read_int(IntType::I64, false, b"9223372036854775807"),
            Some(i64::MAX)
        );
        assert_eq!(read_int(IntType::I64, false, b"9223372036854775808"), None);
        assert_eq!(read_int(IntType::I16, false, b"32768"), None);
        assert_eq!(read_int(IntType::I16, false, b"-32768"), Some(-32768));
        for bad in [&b""[..], b"-", b"1.5", b" 1", b"1e3", b"0x10", b"--1"] {
            assert_eq!(read_int(IntType::I32, false, bad), None, "{bad:?}");
        }
        assert_eq!(
            read_int(IntType::I16, true, &(-7i16).to_be_bytes()),
            Some(-7)
        );
        assert_eq!(read_int(IntType::I32, true, &7i32.to_be_bytes()), Some(7));
        assert_eq!(read_int(IntType::I64, true, &7i64.to_be_bytes()), Some(7));
        assert_eq!(read_int(IntType::I32, true, &7i64.to_be_bytes()), None);
        assert_eq!(read_int(IntType::I64, true, &[0; 3]), None);
    }

    #[test]
    fn writes_ints_in_range() {
        let mut out = BytesMut::new();
        assert_eq!(write_int(IntType::I16, false, -120, &mut out), Some(()));
        assert_eq!(&out[..], b"-120");
        out.clear();
        assert_eq!(write_int(IntType::I16, true, 300, &mut out), Some(()));
        assert_eq!(&out[..], &300i16.to_be_bytes());
        assert_eq!(write_int(IntType::I16, true, 40_000, &mut out), None);
        assert_eq!(
            write_int(IntType::I64, true, i128::from(i64::MAX) + 1, &mut out),
            None
        );
    }

    #[test]
    fn floats_round_trip_text() {
        let text = |single: bool, v: f64| {
            let mut out = BytesMut::new();
            write_float(single, false, v, &mut out).expect("written");
            String::from_utf8(out.to_vec()).expect("utf8")
        };
        assert_eq!(text(false, 1.5), "1.5");
        assert_eq!(text(false, -120.0), "-120");
        assert_eq!(text(false, 1e300), "1e+300");
        assert_eq!(text(false, 1.5e-7), "1.5e-7");
        assert_eq!(text(false, f64::NAN), "NaN");
        assert_eq!(text(false, f64::NEG_INFINITY), "-Infinity");
        assert_eq!(text(true, 0.1f32.into()), "0.1");
        assert_eq!(text(true, 3e38), "3e+38");
        assert_eq!(read_float(true, false, b"0.1"), Some(0.1f32.into()));
        assert_eq!(
            read_float(false, false, b"-Infinity"),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(read_float(false, false, b"1e+300"), Some(1e300));
        assert_eq!(read_float(false, false, b"abc"), None);
        assert_eq!(read_float(false, true, &2.5f64.to_be_bytes()), Some(2.5));
        assert_eq!(read_float(true, true, &2.5f32.to_be_bytes()), Some(2.5));
        assert_eq!(read_float(true, true, &2.5f64.to_be_bytes()), None);
    }
}

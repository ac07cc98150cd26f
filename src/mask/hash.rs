//! `hash`: a keyed HMAC-SHA-256 pseudonym of the value, in the value's type.
//!
//! The HMAC is always taken over the value's canonical *text* form, so a
//! value hashes the same in the text and binary encodings (and `42` as int4
//! matches `42` as int8 or numeric) and joins on hashed columns still work.

use super::key::HashKey;
use super::number::{read_int, write_int};
use super::numeric::{self, Decimal, Numeric};
use super::oid::{kind, IntType, Kind};
use bytes::{BufMut, BytesMut};
use std::fmt::Write;

/// Hex digits of a text pseudonym: 64 bits, enough to keep joins apart.
const TEXT_BYTES: usize = 8;

/// Masks one cell of type `oid`; `None` = NULL.
pub(super) fn hash(
    key: &HashKey,
    oid: u32,
    binary: bool,
    value: &[u8],
    out: &mut BytesMut,
) -> Option<()> {
    match kind(oid) {
        Kind::Text { bpchar } => {
            // char(n) pads with spaces that PostgreSQL ignores in comparisons.
            let v = if bpchar { trim_spaces(value) } else { value };
            let mac = key.mac(v);
            write_hex(mac.get(..TEXT_BYTES)?, out);
            Some(())
        }
        Kind::Int(t) => {
            let v = read_int(t, binary, value)?;
            let mac = mac_of_text(key, out, |o| write!(o, "{v}").ok())?;
            write_int(t, binary, fold(t, &mac).into(), out)
        }
        Kind::Numeric => {
            let n = numeric::read(binary, value)?;
            let mac = mac_of_text(key, out, |o| {
                numeric::write_text(&n, o);
                Some(())
            })?;
            let h = i64::from_be_bytes(mac.get(..8)?.try_into().ok()?);
            numeric::write(&Numeric::Finite(integer(h)), binary, out)
        }
        Kind::Uuid => {
            let u = read_uuid(binary, value)?;
            let mac = mac_of_text(key, out, |o| {
                write_uuid_text(&u, o);
                Some(())
            })?;
            let mut h: [u8; 16] = mac.get(..16)?.try_into().ok()?;
            // Version 8 (custom, RFC 9562) and the RFC variant: a valid UUID.
            h[6] = (h[6] & 0x0f) | 0x80;
            h[8] = (h[8] & 0x3f) | 0x80;
            if binary {
                out.put_slice(&h);
            } else {
                write_uuid_text(&h, out);
            }
            Some(())
        }
        _ => None,
    }
}

/// The HMAC of the text `write` puts at the end of `out`, which is removed
/// again: `out` doubles as the scratch buffer, so nothing is allocated.
fn mac_of_text(
    key: &HashKey,
    out: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Option<()>,
) -> Option<[u8; 32]> {
    let start = out.len();
    let written = write(out);
    let mac = written.and_then(|()| Some(key.mac(out.get(start..)?)));
    out.truncate(start);
    mac
}

/// The first bytes of the HMAC as a value spread over all of type `t`.
fn fold(t: IntType, mac: &[u8; 32]) -> i64 {
    let [a, b, c, d, e, f, g, h, ..] = *mac;
    let v = i64::from_be_bytes([a, b, c, d, e, f, g, h]);
    // Truncation keeps the low bits, which are as uniform as the rest.
    match t {
        IntType::I16 => (v as i16).into(),
        IntType::I32 => (v as i32).into(),
        IntType::I64 => v,
    }
}

/// `v` as an integer-valued numeric (scale 0).
fn integer(v: i64) -> Decimal {
    let mut d = Decimal {
        neg: v < 0,
        digits: v
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect(),
        exp: 0,
        dscale: 0,
    };
    d.normalize();
    d
}

fn trim_spaces(v: &[u8]) -> &[u8] {
    let end = v.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    v.get(..end).unwrap_or(v)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut BytesMut) {
    for &b in bytes {
        out.put_u8(HEX[usize::from(b >> 4)]);
        out.put_u8(HEX[usize::from(b & 0x0f)]);
    }
}

/// A uuid cell: 16 bytes, or text as `uuid_out` prints it (any hex case).
fn read_uuid(binary: bool, value: &[u8]) -> Option<[u8; 16]> {
    if binary {
        return value.try_into().ok();
    }
    if value.len() != 36 {
        return None;
    }
    let mut u = [0u8; 16];
    let mut digits = value.iter().enumerate().filter_map(|(i, &c)| {
        if matches!(i, 8 | 13 | 18 | 23) {
            (c != b'-').then_some(None)
        } else {
            Some((c as char).to_digit(16))
        }
    });
    for byte in &mut u {
        let hi = digits.next()??;
        let lo = digits.next()??;
        *byte = (hi * 16 + lo) as u8;
    }
    Some(u)
}

/// `uuid_out`'s form: lowercase, 8-4-4-4-12.
fn write_uuid_text(u: &[u8; 16], out: &mut BytesMut) {
    for (i, chunk) in [&u[0..4], &u[4..6], &u[6..8], &u[8..10], &u[10..16]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.put_u8(b'-');
        }
        write_hex(chunk, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::oid;
    use super::*;

    fn run(key: &HashKey, oid: u32, binary: bool, v: &[u8]) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        hash(key, oid, binary, v, &mut out)?;
        Some(out.to_vec())
    }

    #[test]
    fn uuid_text_parses_and_prints() {
        let t = b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11";
        let u = read_uuid(false, t).expect("parses");
        let mut out = BytesMut::new();
        write_uuid_text(&u, &mut out);
        assert_eq!(&out[..], b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!(read_uuid(true, &u), Some(u));
        for bad in [
            &b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"[..],
            b"a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11",
            b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            b"a0eebc999c0b4ef8bb6d6bb9bd380a11----",
        ] {
            assert_eq!(read_uuid(false, bad), None);
        }
        assert_eq!(read_uuid(true, &u[..15]), None);
    }

    #[test]
    fn hashes_the_text_form() {
        let k = HashKey::new(b"k");
        let hex = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            run(&k, oid::TEXT, false, b"alice").map(|v| String::from_utf8(v).expect("utf8")),
            Some(hex(&k.mac(b"alice")[..8]))
        );
        // char(n) padding does not change the pseudonym.
        assert_eq!(
            run(&k, oid::BPCHAR, false, b"alice   "),
            run(&k, oid::TEXT, true, b"alice")
        );
        let want = i64::from_be_bytes(k.mac(b"-42")[..8].try_into().expect("8"));
        assert_eq!(
            run(&k, oid::INT8, true, &(-42i64).to_be_bytes()),
            Some(want.to_be_bytes().to_vec())
        );
        assert_eq!(
            run(&k, oid::INT2, false, b"-42"),
            Some((want as i16).to_string().into_bytes())
        );
    }
}

//! Binary COPY values as the text PostgreSQL shows for them (what an
//! INSERT's capture records), for the types that are cheap to decode
//! exactly; any other value (and one that does not decode) is recorded as
//! `\x` and the hex of its bytes, the way bytea shows.

use std::fmt::Write;

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const NUMERIC: u32 = 1700;

/// The text of a binary value of type `oid`, and whether it is exactly
/// what PostgreSQL would show (false: the hex of the bytes).
pub fn show(oid: u32, bytes: &[u8]) -> (String, bool) {
    let text = match oid {
        BOOL => match bytes {
            [0] => Some("false".to_owned()),
            [1] => Some("true".to_owned()),
            _ => None,
        },
        // bytea shows as hex: exact.
        BYTEA => return (hex(bytes), true),
        INT2 => bytes
            .try_into()
            .ok()
            .map(|b| i16::from_be_bytes(b).to_string()),
        INT4 => bytes
            .try_into()
            .ok()
            .map(|b| i32::from_be_bytes(b).to_string()),
        INT8 => bytes
            .try_into()
            .ok()
            .map(|b| i64::from_be_bytes(b).to_string()),
        OID => bytes
            .try_into()
            .ok()
            .map(|b| u32::from_be_bytes(b).to_string()),
        TEXT | VARCHAR | BPCHAR | NAME => std::str::from_utf8(bytes).ok().map(str::to_owned),
        DATE => bytes
            .try_into()
            .ok()
            .and_then(|b| date(i32::from_be_bytes(b))),
        NUMERIC => numeric(bytes),
        _ => None,
    };
    match text {
        Some(t) => (t, true),
        None => (hex(bytes), false),
    }
}

/// `\x` and lower-case hex.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("\\x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (years 1 to 9999 only: others
/// show differently, with BC or infinity).
fn date(days: i32) -> Option<String> {
    let (y, m, d) = crate::mask::civil_from_days(i64::from(days) + 10_957);
    (1..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// A binary numeric (ndigits, weight, sign, dscale, base-10000 digits) as
/// PostgreSQL prints it.
fn numeric(b: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            b.get(2 * i..2 * i + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    // PostgreSQL's own limits keep the text short.
    if dscale > 16_383 || !(-8_192..=8_192).contains(&weight) {
        return None;
    }
    let digit = |k: i64| -> Option<u16> {
        let k = usize::try_from(k).ok().filter(|&k| k < ndigits);
        match k {
            Some(k) => word(4 + k).filter(|&d| d < 10_000),
            None => Some(0),
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for k in 0..=weight {
            let d = digit(k)?;
            let _ = if k == 0 {
                write!(s, "{d}")
            } else {
                write!(s, "{d:04}")
            };
        }
    }
    if dscale > 0 {
        s.push('.');
        let start = s.len();
        let mut k = weight + 1;
        while s.len() - start < dscale {
            let _ = write!(s, "{:04}", digit(k)?);
            k += 1;
        }
        s.truncate(start + dscale);
    }
    // Digits past the scale are cut, as PostgreSQL's numeric_recv does.
    Some(s)
}

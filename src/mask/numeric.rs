//! PostgreSQL `numeric` values in both encodings: text as `numeric_out`
//! prints it, binary as `numeric_send` sends it (base-10000 digits).

use bytes::{BufMut, BytesMut};

/// Binary sign words (PostgreSQL's `NUMERIC_POS`, `_NEG`, `_NAN`, `_PINF`, `_NINF`).
const POS: u16 = 0x0000;
const NEG: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
/// Largest display scale PostgreSQL accepts (`NUMERIC_DSCALE_MAX`).
pub(super) const MAX_DSCALE: u16 = 0x3FFF;

/// A `numeric` value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Numeric {
    NaN,
    PosInf,
    NegInf,
    Finite(Decimal),
}

/// A finite `numeric`: `±digits × 10^exp`, shown with `dscale` decimals.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decimal {
    pub(super) neg: bool,
    /// Decimal digits (0-9), most significant first, no leading zeros; empty is 0.
    pub(super) digits: Vec<u8>,
    pub(super) exp: i32,
    pub(super) dscale: u16,
}

impl Decimal {
    /// Drops leading zero digits, and the sign of zero.
    pub(super) fn normalize(&mut self) {
        let zeros = self.digits.iter().take_while(|&&d| d == 0).count();
        self.digits.drain(..zeros);
        if self.digits.is_empty() {
            self.neg = false;
        }
    }

    /// The digit at power of ten `p` (0 outside the stored digits).
    fn digit_at(&self, p: i64) -> u8 {
        let last = i64::from(self.exp) + self.digits.len() as i64 - 1;
        usize::try_from(last - p)
            .ok()
            .and_then(|i| self.digits.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// Reads a `numeric` cell in either encoding; `None` if it is not one.
pub(super) fn read(binary: bool, value: &[u8]) -> Option<Numeric> {
    if binary {
        read_binary(value)
    } else {
        read_text(value)
    }
}

fn read_text(value: &[u8]) -> Option<Numeric> {
    match value {
        b"NaN" => return Some(Numeric::NaN),
        b"Infinity" => return Some(Numeric::PosInf),
        b"-Infinity" => return Some(Numeric::NegInf),
        _ => {}
    }
    let (neg, rest) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (
            rest.get(..dot)?,
            rest.get(dot + 1..).filter(|f| !f.is_empty())?,
        ),
        None => (rest, &[][..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let dscale = u16::try_from(frac.len())
        .ok()
        .filter(|&s| s <= MAX_DSCALE)?;
    let mut d = Decimal {
        neg,
        digits: int.iter().chain(frac).map(|b| b - b'0').collect(),
        exp: -i32::from(dscale),
        dscale,
    };
    d.normalize();
    Some(Numeric::Finite(d))
}

fn read_binary(value: &[u8]) -> Option<Numeric> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(value.get(i..i + 2)?.try_into().ok()?))
    };
    let ndigits = usize::try_from(word(0)? as i16).ok()?;
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = word(6)?;
    if value.len() != 8 + 2 * ndigits || dscale > MAX_DSCALE {
        return None;
    }
    let mut digits = Vec::with_capacity(ndigits * 4);
    for i in 0..ndigits {
        let g = word(8 + 2 * i)?;
        if g > 9999 {
            return None;
        }
        digits.extend_from_slice(&[
            (g / 1000) as u8,
            (g / 100 % 10) as u8,
            (g / 10 % 10) as u8,
            (g % 10) as u8,
        ]);
    }
    let neg = match sign {
        POS => false,
        NEG => true,
        NAN => return Some(Numeric::NaN),
        PINF => return Some(Numeric::PosInf),
        NINF => return Some(Numeric::NegInf),
        _ => return None,
    };
    let mut d = Decimal {
        neg,
        digits,
        // The last base-10000 digit has weight `weight - ndigits + 1`.
        exp: (weight - ndigits as i32 + 1) * 4,
        dscale,
    };
    d.normalize();
    Some(Numeric::Finite(d))
}

/// Writes `n` in the cell encoding; `None` if binary cannot hold it.
pub(super) fn write(n: &Numeric, binary: bool, out: &mut BytesMut) -> Option<()> {
    if binary {
        write_binary(n, out)
    } else {
        write_text(n, out);
        Some(())
    }
}

/// `numeric_out`'s text: also the canonical form that `hash` hashes.
pub(super) fn write_text(n: &Numeric, out: &mut BytesMut) {
    let d = match n {
        Numeric::NaN => return out.put_slice(b"NaN"),
        Numeric::PosInf => return out.put_slice(b"Infinity"),
        Numeric::NegInf => return out.put_slice(b"-Infinity"),
        Numeric::Finite(d) => d,
    };
    if d.neg {
        out.put_u8(b'-');
    }
    let top = match d.digits.len() {
        0 => -1,
        n => i64::from(d.exp) + n as i64 - 1,
    };
    if top < 0 {
        out.put_u8(b'0');
    }
    for p in (0..=top).rev() {
        out.put_u8(b'0' + d.digit_at(p));
    }
    if d.dscale > 0 {
        out.put_u8(b'.');
        for p in 1..=i64::from(d.dscale) {
            out.put_u8(b'0' + d.digit_at(-p));
        }
    }
}

fn write_binary(n: &Numeric, out: &mut BytesMut) -> Option<()> {
    let special = |sign: u16, out: &mut BytesMut| {
        out.put_slice(&[0, 0, 0, 0]);
        out.put_u16(sign);
        out.put_u16(0);
        Some(())
    };
    let d = match n {
        Numeric::NaN => return special(NAN, out),
        Numeric::PosInf => return special(PINF, out),
        Numeric::NegInf => return special(NINF, out),
        Numeric::Finite(d) => d,
    };
    let sign = if d.neg { NEG } else { POS };
    let Some(first) = d.digits.iter().rposition(|&x| x != 0) else {
        out.put_slice(&[0, 0, 0, 0]);
        out.put_u16(sign);
        out.put_u16(d.dscale);
        return Some(());
    };
    // Powers of ten of the highest digit and of the lowest non-zero one.
    let hi = i64::from(d.exp) + d.digits.len() as i64 - 1;
    let lo = hi - first as i64;
    let (g_hi, g_lo) = (hi.div_euclid(4), lo.div_euclid(4));
    let weight = i16::try_from(g_hi).ok()?;
    let ndigits = i16::try_from(g_hi - g_lo + 1).ok()?;
    out.reserve(8 + 2 * ndigits as usize);
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(d.dscale);
    for g in (g_lo..=g_hi).rev() {
        let base = 4 * g;
        let group = (0..4)
            .rev()
            .fold(0u16, |acc, j| acc * 10 + u16::from(d.digit_at(base + j)));
        out.put_u16(group);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: &Numeric) -> String {
        let mut out = BytesMut::new();
        write_text(n, &mut out);
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    fn binary(n: &Numeric) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_binary(n, &mut out).expect("fits");
        out.to_vec()
    }

    /// numeric_send's bytes from its fields.
    fn wire(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn text_round_trips() {
        for s in [
            "0",
            "-1",
            "123456.78",
            "0.00",
            "0.001",
            "-0.5",
            "100000000",
            "12345678901234567890.1234",
            "NaN",
            "Infinity",
            "-Infinity",
            "10.10",
        ] {
            let n = read_text(s.as_bytes()).unwrap_or_else(|| panic!("{s} parses"));
            assert_eq!(text(&n), s);
        }
    }

    #[test]
    fn text_rejects_non_numbers() {
        for s in [
            "", "-", "1.", ".5", "1e5", "+1", "1,5", "nan", "1 ", "--1", "1.2.3",
        ] {
            assert_eq!(read_text(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn binary_matches_numeric_send() {
        // Bytes as PostgreSQL sends them (checked against a server in tests/masking.rs).
        let cases: [(&str, Vec<u8>); 8] = [
            ("123456.78", wire(1, POS, 2, &[12, 3456, 7800])),
            ("-0.001", wire(-1, NEG, 3, &[10])),
            ("0.00", wire(0, POS, 2, &[])),
            ("120000", wire(1, POS, 0, &[12])),
            ("10000", wire(1, POS, 0, &[1])),
            ("NaN", wire(0, NAN, 0, &[])),
            ("Infinity", wire(0, PINF, 0, &[])),
            ("-Infinity", wire(0, NINF, 0, &[])),
        ];
        for (s, bytes) in cases {
            let n = read_text(s.as_bytes()).expect("parses");
            assert_eq!(binary(&n), bytes, "{s}");
            assert_eq!(read_binary(&bytes).map(|n| text(&n)).as_deref(), Some(s));
        }
    }

    #[test]
    fn binary_reads_unstripped_digits() {
        // Leading and trailing zero groups are legal on input.
        let n = read_binary(&wire(2, POS, 1, &[0, 12, 3456, 7000])).expect("parses");
        assert_eq!(text(&n), "123456.7");
    }

    #[test]
    fn binary_rejects_malformed() {
        let ok = wire(1, POS, 2, &[12, 3456, 7800]);
        assert_eq!(read_binary(&ok[..ok.len() - 1]), None);
        assert_eq!(read_binary(&[ok.clone(), vec![0]].concat()), None);
        assert_eq!(read_binary(&ok[..6]), None);
        assert_eq!(read_binary(&wire(0, POS, 0, &[10000])), None);
        assert_eq!(read_binary(&wire(0, 0x8000, 0, &[1])), None);
        assert_eq!(read_binary(&wire(0, POS, 0x4000, &[1])), None);
        let mut negative = ok.clone();
        negative[0] = 0xff;
        assert_eq!(read_binary(&negative), None);
    }
}

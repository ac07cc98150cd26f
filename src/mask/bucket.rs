//! `bucket:W`: a number becomes `floor(v / W) * W`, in its own type and
//! encoding. Integers and numerics are computed exactly in decimal (W as the
//! shortest decimal that reads as the policy's float); floats in f64.

use super::number::{read_float, read_int, write_float, write_int};
use super::numeric::{self, Decimal, Numeric, MAX_DSCALE};
use super::oid::{kind, Kind};
use bytes::BytesMut;

/// Masks one cell of type `oid`; `None` = NULL.
pub(super) fn bucket(
    width: f64,
    oid: u32,
    binary: bool,
    value: &[u8],
    out: &mut BytesMut,
) -> Option<()> {
    match kind(oid) {
        Kind::Int(t) => {
            let (m, e) = decimal_width(width)?;
            // A fractional width has no integer bucket bounds.
            let e = u32::try_from(e).ok()?;
            let v = i128::from(read_int(t, binary, value)?);
            let w = 10i128
                .checked_pow(e)
                .and_then(|p| p.checked_mul(i128::from(m)));
            let r = match w {
                Some(w) => v.div_euclid(w) * w,
                // Wider than any integer: all non-negative values share bucket 0.
                None if v >= 0 => 0,
                None => return None,
            };
            write_int(t, binary, r, out)
        }
        Kind::Float { single } => {
            let v = read_float(single, binary, value)?;
            let r = if v.is_finite() {
                let r = (v / width).floor() * width;
                let fits = if single {
                    (r as f32).is_finite()
                } else {
                    r.is_finite()
                };
                fits.then_some(r)?
            } else {
                v // NaN and infinities stay as they are.
            };
            write_float(single, binary, r, out)
        }
        Kind::Numeric => {
            let n = match numeric::read(binary, value)? {
                Numeric::Finite(d) => {
                    let (m, e) = decimal_width(width)?;
                    Numeric::Finite(floor_to_multiple(d, m, e)?)
                }
                special => special,
            };
            numeric::write(&n, binary, out)
        }
        _ => None,
    }
}

/// `w` as `m × 10^e` with `m` not a multiple of 10, from the shortest
/// decimal that reads as `w` (so `0.1` is exactly one tenth).
fn decimal_width(w: f64) -> Option<(u64, i32)> {
    if !(w.is_finite() && w > 0.0) {
        return None;
    }
    let (mut m, mut e) = if w.fract() == 0.0 && w < 1e19 {
        (w as u64, 0)
    } else {
        short_fraction(w).or_else(|| from_exponent_form(w))?
    };
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    Some((m, e))
}

/// The fewest decimals (up to 17) whose value reads back as `w`; cheap, so
/// it can run per cell.
fn short_fraction(w: f64) -> Option<(u64, i32)> {
    (1..=17).find_map(|k| {
        let p = 10f64.powi(k);
        let scaled = (w * p).round();
        ((1.0..1e19).contains(&scaled) && scaled / p == w).then_some((scaled as u64, -k))
    })
}

/// Very large or tiny widths, via Rust's shortest `1.25e-30` form.
fn from_exponent_form(w: f64) -> Option<(u64, i32)> {
    let s = format!("{w:e}");
    let (mantissa, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let m = format!("{int}{frac}").parse().ok()?;
    Some((m, exp - i32::try_from(frac.len()).ok()?))
}

/// `floor(d / (m × 10^e)) × m × 10^e`, exactly.
fn floor_to_multiple(mut d: Decimal, m: u64, e: i32) -> Option<Decimal> {
    // Split |d| / 10^e into an integer part (kept in `d.digits`) and
    // whether a non-zero fraction was cut off.
    let shift = i64::from(d.exp) - i64::from(e);
    let mut cut = false;
    if shift >= 0 {
        let zeros = usize::try_from(shift).ok()?;
        d.digits.resize(d.digits.len() + zeros, 0);
    } else {
        let keep = d.digits.len().saturating_sub(usize::try_from(-shift).ok()?);
        cut = d
            .digits
            .get(keep..)
            .is_some_and(|f| f.iter().any(|&x| x != 0));
        d.digits.truncate(keep);
    }
    let r = remainder(&d.digits, m);
    // The integer part minus its remainder is the multiple of m below it;
    // a negative value with anything left over goes one bucket further down.
    sub_small(&mut d.digits, r);
    if d.neg && (r != 0 || cut) {
        add_small(&mut d.digits, u128::from(m));
    }
    d.exp = e;
    let decimals = u16::try_from(e.min(0).unsigned_abs()).ok()?;
    d.dscale = d.dscale.max(decimals);
    if d.dscale > MAX_DSCALE {
        return None;
    }
    d.normalize();
    Some(d)
}

/// The decimal number `digits` modulo `m`, in the cheapest integer width:
/// widths that are powers of ten (`m` = 1) are the common case.
fn remainder(digits: &[u8], m: u64) -> u128 {
    if m == 1 {
        0
    } else if let Ok(m) = u32::try_from(m) {
        let m = u64::from(m);
        u128::from(
            digits
                .iter()
                .fold(0u64, |r, &x| (r * 10 + u64::from(x)) % m),
        )
    } else {
        let m = u128::from(m);
        digits
            .iter()
            .fold(0u128, |r, &x| (r * 10 + u128::from(x)) % m)
    }
}

/// `digits -= x`, for `x` no larger than the number.
fn sub_small(digits: &mut [u8], mut x: u128) {
    let mut borrow = 0u8;
    for d in digits.iter_mut().rev() {
        if x == 0 && borrow == 0 {
            break;
        }
        let take = (x % 10) as u8 + borrow;
        x /= 10;
        if *d >= take {
            *d -= take;
            borrow = 0;
        } else {
            *d = *d + 10 - take;
            borrow = 1;
        }
    }
}

/// `digits += x`, growing at the front as needed.
fn add_small(digits: &mut Vec<u8>, mut x: u128) {
    for d in digits.iter_mut().rev() {
        if x == 0 {
            return;
        }
        let s = u128::from(*d) + x % 10;
        x = x / 10 + s / 10;
        *d = (s % 10) as u8;
    }
    let mut front = Vec::new();
    while x > 0 {
        front.push((x % 10) as u8);
        x /= 10;
    }
    front.reverse();
    digits.splice(0..0, front);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_become_exact_decimals() {
        assert_eq!(decimal_width(10000.0), Some((1, 4)));
        assert_eq!(decimal_width(5000.0), Some((5, 3)));
        assert_eq!(decimal_width(7.0), Some((7, 0)));
        assert_eq!(decimal_width(0.1), Some((1, -1)));
        assert_eq!(decimal_width(0.3), Some((3, -1)));
        assert_eq!(decimal_width(2.5), Some((25, -1)));
        assert_eq!(decimal_width(0.000001), Some((1, -6)));
        assert_eq!(decimal_width(1e300), Some((1, 300)));
        assert_eq!(decimal_width(1.25e-30), Some((125, -32)));
        assert_eq!(decimal_width(0.0), None);
        assert_eq!(decimal_width(f64::NAN), None);
    }

    fn dec(s: &str) -> Decimal {
        match numeric::read(false, s.as_bytes()) {
            Some(Numeric::Finite(d)) => d,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn floor(s: &str, w: f64) -> String {
        let (m, e) = decimal_width(w).expect("width");
        let d = floor_to_multiple(dec(s), m, e).expect("fits");
        let mut out = BytesMut::new();
        numeric::write_text(&Numeric::Finite(d), &mut out);
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    #[test]
    fn floors_decimals() {
        assert_eq!(floor("123456.78", 10000.0), "120000.00");
        assert_eq!(floor("-123456.78", 10000.0), "-130000.00");
        assert_eq!(floor("-120000", 10000.0), "-120000");
        assert_eq!(floor("-120000.01", 10000.0), "-130000.00");
        assert_eq!(floor("9999", 10000.0), "0");
        assert_eq!(floor("-1", 10000.0), "-10000");
        assert_eq!(floor("0", 10000.0), "0");
        assert_eq!(floor("-0.00", 10000.0), "0.00");
        assert_eq!(floor("17", 5.0), "15");
        assert_eq!(floor("-17", 5.0), "-20");
        assert_eq!(floor("-15", 5.0), "-15");
        assert_eq!(floor("1.37", 0.25), "1.25");
        assert_eq!(floor("7", 0.5), "7.0");
        assert_eq!(floor("-0.01", 0.5), "-0.50");
        assert_eq!(floor("0.3", 0.1), "0.3");
        assert_eq!(floor("99999", 7.0), "99995");
        assert_eq!(floor("-99999", 7.0), "-100002");
        assert_eq!(
            floor("12345678901234567890123", 1000.0),
            "12345678901234567890000"
        );
        assert_eq!(floor("5", 1e300), "0");
        assert_eq!(floor("-5", 1e300), format!("-1{}", "0".repeat(300)));
        // A width of many digits (m > 2^32).
        assert_eq!(floor("100000000000", 12345678901.0), "98765431208");
    }

    #[test]
    fn small_digit_arithmetic() {
        let mut d = vec![1, 0, 0];
        sub_small(&mut d, 1);
        assert_eq!(d, vec![0, 9, 9]);
        let mut d = vec![9, 9];
        add_small(&mut d, 12);
        assert_eq!(d, vec![1, 1, 1]);
        let mut d = vec![];
        add_small(&mut d, 305);
        assert_eq!(d, vec![3, 0, 5]);
    }
}

//! `year`: dates and timestamps become January 1st, 00:00, of their year.
//!
//! Binary values are days (date) or microseconds (timestamps) since
//! 2000-01-01; timestamptz is truncated in UTC. Text values must be in the
//! ISO DateStyle; timestamptz text is also truncated in UTC (and printed
//! with `+00`) so that both encodings of one value mask to the same instant.

use super::oid::{kind, Kind};
use bytes::{BufMut, BytesMut};
use std::fmt::Write;

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const USECS_PER_DAY: i64 = 86_400_000_000;
/// The earliest date PostgreSQL has (4714-11-24 BC), in days since 2000-01-01.
const MIN_DAYS: i64 = -2_451_545;
/// Astronomical year of that date: January 1st of it is out of range.
const MIN_YEAR: i64 = -4713;

/// Masks one cell of type `oid`; `None` = NULL.
pub(super) fn year(oid: u32, binary: bool, value: &[u8], out: &mut BytesMut) -> Option<()> {
    let tz = match kind(oid) {
        Kind::Date => None,
        Kind::Timestamp { tz } => Some(tz),
        _ => return None,
    };
    if !binary {
        return year_text(tz, value, out);
    }
    match tz {
        None => {
            let days = i32::from_be_bytes(value.try_into().ok()?);
            // i32::MIN and MAX are -infinity and infinity.
            let r = if days == i32::MIN || days == i32::MAX {
                days
            } else {
                i32::try_from(jan1(days.into())?).ok()?
            };
            out.put_i32(r);
        }
        Some(_) => {
            let us = i64::from_be_bytes(value.try_into().ok()?);
            let r = if us == i64::MIN || us == i64::MAX {
                us
            } else {
                jan1(us.div_euclid(USECS_PER_DAY))?.checked_mul(USECS_PER_DAY)?
            };
            out.put_i64(r);
        }
    }
    Some(())
}

/// January 1st of the year of `days` (both since 2000-01-01).
fn jan1(days: i64) -> Option<i64> {
    let (y, _, _) = civil_from_days(days + PG_EPOCH_DAYS);
    let r = days_from_civil(y, 1, 1) - PG_EPOCH_DAYS;
    (r >= MIN_DAYS).then_some(r)
}

/// Proleptic Gregorian (year, month, day) of days since 1970-01-01
/// (Howard Hinnant's algorithm; astronomical years, 0 = 1 BC).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `tz`: None for date, Some(with time zone) for timestamps.
fn year_text(tz: Option<bool>, value: &[u8], out: &mut BytesMut) -> Option<()> {
    if value == b"infinity" || value == b"-infinity" {
        out.put_slice(value);
        return Some(());
    }
    let (mut p, bc) = match value.strip_suffix(b" BC") {
        Some(rest) => (Cursor(rest), true),
        None => (Cursor(value), false),
    };
    let y = p.number(1, 9)?;
    p.byte(b'-')?;
    let month = p.number(2, 2)?;
    p.byte(b'-')?;
    let day = p.number(2, 2)?;
    if y == 0 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut year = if bc { 1 - y } else { y };
    if let Some(tz) = tz {
        p.byte(b' ')?;
        let h = p.number(2, 2)?;
        p.byte(b':')?;
        let mi = p.number(2, 2)?;
        p.byte(b':')?;
        let s = p.number(2, 2)?;
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
        if p.byte(b'.').is_some() {
            p.number(1, 6)?;
        }
        if tz {
            // Only the year matters: move it when UTC is in another one.
            let local = h * 3600 + mi * 60 + s;
            let utc = local - p.offset()?;
            if month == 1 && day == 1 && utc < 0 {
                year -= 1;
            } else if month == 12 && day == 31 && utc >= 86_400 {
                year += 1;
            }
        }
    }
    if !p.0.is_empty() || year <= MIN_YEAR {
        return None;
    }
    let (shown, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    write!(out, "{shown:04}-01-01").ok()?;
    match tz {
        None => {}
        Some(false) => out.put_slice(b" 00:00:00"),
        Some(true) => out.put_slice(b" 00:00:00+00"),
    }
    if bc {
        out.put_slice(b" BC");
    }
    Some(())
}

/// A forward reader over ISO date/time text.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Consumes `b`.
    fn byte(&mut self, b: u8) -> Option<()> {
        let (&first, rest) = self.0.split_first()?;
        (first == b).then(|| self.0 = rest)
    }

    /// Consumes `min..=max` ASCII digits.
    fn number(&mut self, min: usize, max: usize) -> Option<i64> {
        let n = self
            .0
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let (digits, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(digits.iter().fold(0, |v, &d| v * 10 + i64::from(d - b'0')))
    }

    /// Consumes a UTC offset `±HH[:MM[:SS]]`, in seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.0.first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.0 = self.0.get(1..)?;
        let mut secs = self.number(2, 2)? * 3600;
        for unit in [60, 1] {
            if self.byte(b':').is_none() {
                break;
            }
            secs += self.number(2, 2)? * unit;
        }
        Some(sign * secs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::oid;
    use super::*;

    fn text(oid: u32, v: &str) -> Option<String> {
        let mut out = BytesMut::new();
        year(oid, false, v.as_bytes(), &mut out)?;
        String::from_utf8(out.to_vec()).ok()
    }

    #[test]
    fn civil_conversions_agree() {
        for days in [
            -2_451_545 - 10_957,
            -719_468,
            -1,
            0,
            1,
            10_957,
            11_016,
            2_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(PG_EPOCH_DAYS), (2000, 1, 1));
        assert_eq!(days_from_civil(-4713, 11, 24) - PG_EPOCH_DAYS, MIN_DAYS);
    }

    #[test]
    fn text_dates() {
        assert_eq!(text(oid::DATE, "1985-03-14").as_deref(), Some("1985-01-01"));
        assert_eq!(
            text(oid::DATE, "0044-03-15 BC").as_deref(),
            Some("0044-01-01 BC")
        );
        assert_eq!(
            text(oid::DATE, "12345-06-07").as_deref(),
            Some("12345-01-01")
        );
        assert_eq!(text(oid::DATE, "infinity").as_deref(), Some("infinity"));
        assert_eq!(text(oid::DATE, "-infinity").as_deref(), Some("-infinity"));
        assert_eq!(text(oid::DATE, "4714-12-31 BC"), None);
        assert_eq!(
            text(oid::DATE, "4713-12-31 BC").as_deref(),
            Some("4713-01-01 BC")
        );
    }

    #[test]
    fn text_timestamps() {
        let ts = |v| text(oid::TIMESTAMP, v);
        assert_eq!(
            ts("1985-03-14 10:11:12.5").as_deref(),
            Some("1985-01-01 00:00:00")
        );
        assert_eq!(
            ts("1985-03-14 10:11:12").as_deref(),
            Some("1985-01-01 00:00:00")
        );
        assert_eq!(
            ts("0001-01-01 00:00:00 BC").as_deref(),
            Some("0001-01-01 00:00:00 BC")
        );
        assert_eq!(ts("1985-03-14 10:11:12+02"), None);
        let tz = |v| text(oid::TIMESTAMPTZ, v);
        assert_eq!(
            tz("1985-03-14 10:11:12+02").as_deref(),
            Some("1985-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("1985-03-14 10:11:12.123456-07:30").as_deref(),
            Some("1985-01-01 00:00:00+00")
        );
        // In UTC these are already, or still, another year.
        assert_eq!(
            tz("1985-01-01 01:00:00+02").as_deref(),
            Some("1984-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("1985-01-01 02:00:00+02").as_deref(),
            Some("1985-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("1985-12-31 23:00:00-01").as_deref(),
            Some("1986-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("1985-12-31 22:59:59-01").as_deref(),
            Some("1985-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("0001-01-01 00:30:00+01 BC").as_deref(),
            Some("0002-01-01 00:00:00+00 BC")
        );
        assert_eq!(
            tz("0001-12-31 23:30:00-01 BC").as_deref(),
            Some("0001-01-01 00:00:00+00")
        );
        assert_eq!(
            tz("1900-06-01 12:00:00+00:53:28").as_deref(),
            Some("1900-01-01 00:00:00+00")
        );
        assert_eq!(tz("infinity").as_deref(), Some("infinity"));
        assert_eq!(tz("1985-03-14 10:11:12"), None);
    }

    #[test]
    fn non_iso_text_is_null() {
        for (o, v) in [
            (oid::DATE, "03/14/1985"),
            (oid::DATE, "14.03.1985"),
            (oid::DATE, "1985-3-14"),
            (oid::DATE, "1985-13-01"),
            (oid::DATE, "0000-01-01"),
            (oid::DATE, "1985-03-14 "),
            (oid::DATE, "1985-03-14 AD"),
            (oid::DATE, ""),
            (oid::TIMESTAMP, "Thu Mar 14 10:11:12 1985"),
            (oid::TIMESTAMP, "1985-03-14T10:11:12"),
            (oid::TIMESTAMP, "1985-03-14 25:11:12"),
            (oid::TIMESTAMP, "1985-03-14 10:11:12."),
            (oid::TIMESTAMP, "1985-03-14 10:11:12.1234567"),
            (oid::TIMESTAMPTZ, "1985-03-14 10:11:12 CET"),
            (oid::TIMESTAMPTZ, "1985-03-14 10:11:12+2"),
            (oid::TIMESTAMPTZ, "Infinity"),
        ] {
            assert_eq!(text(o, v), None, "{v:?}");
        }
    }

    fn bin_date(days: i32) -> Option<i32> {
        let mut out = BytesMut::new();
        year(oid::DATE, true, &days.to_be_bytes(), &mut out)?;
        Some(i32::from_be_bytes(out[..].try_into().ok()?))
    }

    fn bin_ts(oid: u32, us: i64) -> Option<i64> {
        let mut out = BytesMut::new();
        year(oid, true, &us.to_be_bytes(), &mut out)?;
        Some(i64::from_be_bytes(out[..].try_into().ok()?))
    }

    #[test]
    fn binary_dates_and_timestamps() {
        let d = |y, m, dd| (days_from_civil(y, m, dd) - PG_EPOCH_DAYS) as i32;
        assert_eq!(bin_date(d(1985, 3, 14)), Some(d(1985, 1, 1)));
        assert_eq!(bin_date(d(2000, 1, 1)), Some(0));
        assert_eq!(bin_date(d(2024, 12, 31)), Some(d(2024, 1, 1)));
        assert_eq!(bin_date(d(-43, 3, 15)), Some(d(-43, 1, 1)));
        assert_eq!(bin_date(d(-4713, 12, 1)), None);
        assert_eq!(bin_date(i32::MAX), Some(i32::MAX));
        assert_eq!(bin_date(i32::MIN), Some(i32::MIN));
        let us = |y, m, dd, secs: i64| i64::from(d(y, m, dd)) * USECS_PER_DAY + secs * 1_000_000;
        for o in [oid::TIMESTAMP, oid::TIMESTAMPTZ] {
            assert_eq!(
                bin_ts(o, us(1985, 3, 14, 36_672) + 5),
                Some(us(1985, 1, 1, 0))
            );
            assert_eq!(bin_ts(o, us(1999, 12, 31, 86_399)), Some(us(1999, 1, 1, 0)));
            assert_eq!(bin_ts(o, i64::MAX), Some(i64::MAX));
            assert_eq!(bin_ts(o, i64::MIN), Some(i64::MIN));
        }
    }

    #[test]
    fn malformed_binary_and_other_types_are_null() {
        let mut out = BytesMut::new();
        assert_eq!(year(oid::DATE, true, &[0, 0, 1], &mut out), None);
        assert_eq!(year(oid::TIMESTAMP, true, &[0; 4], &mut out), None);
        assert_eq!(year(oid::TEXT, false, b"1985-03-14", &mut out), None);
        assert_eq!(year(oid::INT4, true, &[0; 4], &mut out), None);
        assert!(out.is_empty());
    }
}

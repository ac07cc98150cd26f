//! Mask methods as written in policies: parsing, printing, and which types
//! each one can mask (rather than turn into NULL).

use super::oid::{kind, Kind};
use super::MaskError;
use std::fmt;

/// The text `redact` uses when the policy gives none.
pub const DEFAULT_REDACTION: &str = "REDACTED";

/// How a value is masked (parsed from policy text).
#[derive(Debug, Clone, PartialEq)]
pub enum MaskMethod {
    /// `null`: SQL NULL, any type.
    Null,
    /// `redact` or `redact:TEXT`: a fixed text for text-like types.
    Redact(String),
    /// `partial:N`: keep the last N characters, others become `*`.
    Partial {
        /// Characters kept at the end.
        keep: usize,
    },
    /// `hash`: keyed HMAC-SHA-256, stable so that joins still work.
    Hash,
    /// `year`: dates and timestamps truncated to January 1st of their year.
    Year,
    /// `bucket:W`: numbers to the lower bound of their width-W bucket.
    Bucket {
        /// Bucket width, finite and positive.
        width: f64,
    },
}

impl MaskMethod {
    /// Parses `null`, `redact[:TEXT]`, `partial:N`, `hash`, `year`, `bucket:W`.
    pub fn parse(s: &str) -> Result<Self, MaskError> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let no_arg = |m: MaskMethod, name: &'static str| match arg {
            None => Ok(m),
            Some(_) => Err(MaskError::UnexpectedArgument(name)),
        };
        match name {
            "null" => no_arg(MaskMethod::Null, "null"),
            "hash" => no_arg(MaskMethod::Hash, "hash"),
            "year" => no_arg(MaskMethod::Year, "year"),
            "redact" => match arg {
                None => Ok(MaskMethod::Redact(DEFAULT_REDACTION.to_owned())),
                // PostgreSQL text cannot hold NUL; clients would choke on it.
                Some(t) if t.contains('\0') => Err(bad("redact", t)),
                Some(t) => Ok(MaskMethod::Redact(t.to_owned())),
            },
            "partial" => {
                let a = arg.ok_or(MaskError::MissingArgument("partial"))?;
                let keep = a.parse().map_err(|_| bad("partial", a))?;
                Ok(MaskMethod::Partial { keep })
            }
            "bucket" => {
                let a = arg.ok_or(MaskError::MissingArgument("bucket"))?;
                match a.parse::<f64>() {
                    Ok(width) if width.is_finite() && width > 0.0 => {
                        Ok(MaskMethod::Bucket { width })
                    }
                    _ => Err(bad("bucket", a)),
                }
            }
            _ => Err(MaskError::UnknownMethod(s.to_owned())),
        }
    }

    /// Whether the method masks values of `type_oid` into values (not NULL);
    /// `null` applies to every type. Lets policies be checked at load time.
    pub fn applies_to(&self, type_oid: u32) -> bool {
        let k = kind(type_oid);
        let text = matches!(k, Kind::Text { .. });
        match self {
            MaskMethod::Null => true,
            MaskMethod::Redact(_) | MaskMethod::Partial { .. } => text,
            MaskMethod::Hash => text || matches!(k, Kind::Int(_) | Kind::Numeric | Kind::Uuid),
            MaskMethod::Year => matches!(k, Kind::Date | Kind::Timestamp { .. }),
            MaskMethod::Bucket { width } => match k {
                Kind::Numeric | Kind::Float { .. } => true,
                // A fractional width has no integer bucket bounds.
                Kind::Int(_) => width.fract() == 0.0,
                _ => false,
            },
        }
    }
}

fn bad(method: &'static str, arg: &str) -> MaskError {
    MaskError::BadArgument {
        method,
        arg: arg.to_owned(),
    }
}

impl fmt::Display for MaskMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskMethod::Null => f.write_str("null"),
            MaskMethod::Redact(t) if t == DEFAULT_REDACTION => f.write_str("redact"),
            MaskMethod::Redact(t) => write!(f, "redact:{t}"),
            MaskMethod::Partial { keep } => write!(f, "partial:{keep}"),
            MaskMethod::Hash => f.write_str("hash"),
            MaskMethod::Year => f.write_str("year"),
            // f64's Display is the shortest text that parses back to it.
            MaskMethod::Bucket { width } => write!(f, "bucket:{width}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::oid;
    use super::*;

    #[test]
    fn parses_every_method() {
        let cases = [
            ("null", MaskMethod::Null),
            ("redact", MaskMethod::Redact("REDACTED".into())),
            ("redact:***", MaskMethod::Redact("***".into())),
            ("redact:a:b", MaskMethod::Redact("a:b".into())),
            ("redact:", MaskMethod::Redact(String::new())),
            ("partial:4", MaskMethod::Partial { keep: 4 }),
            ("partial:0", MaskMethod::Partial { keep: 0 }),
            ("hash", MaskMethod::Hash),
            ("year", MaskMethod::Year),
            ("bucket:10000", MaskMethod::Bucket { width: 10000.0 }),
            ("bucket:0.5", MaskMethod::Bucket { width: 0.5 }),
            ("bucket:1e3", MaskMethod::Bucket { width: 1000.0 }),
        ];
        for (text, want) in cases {
            assert_eq!(MaskMethod::parse(text).ok(), Some(want), "{text}");
        }
    }

    #[test]
    fn rejects_bad_policies() {
        for text in [
            "",
            "NULL",
            "nul",
            "null:1",
            "hash:x",
            "year:2",
            "partial",
            "partial:",
            "partial:-1",
            "partial:x",
            "bucket",
            "bucket:0",
            "bucket:-5",
            "bucket:NaN",
            "bucket:inf",
            "bucket:ten",
            "redact:a\0b",
            " hash",
        ] {
            assert!(MaskMethod::parse(text).is_err(), "{text:?} parsed");
        }
        assert!(matches!(
            MaskMethod::parse("scramble"),
            Err(MaskError::UnknownMethod(m)) if m == "scramble"
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "null",
            "redact",
            "redact:XXX",
            "redact:",
            "redact:a:b",
            "partial:3",
            "hash",
            "year",
            "bucket:10000",
            "bucket:0.1",
            "bucket:2.5",
            "bucket:1e300",
            "bucket:0.000001",
        ] {
            let m = MaskMethod::parse(text).expect("valid");
            let shown = m.to_string();
            assert_eq!(MaskMethod::parse(&shown).ok(), Some(m), "{text} -> {shown}");
        }
        assert_eq!(
            MaskMethod::parse("redact:REDACTED")
                .map(|m| m.to_string())
                .ok(),
            Some("redact".to_owned())
        );
        assert_eq!(
            MaskMethod::Bucket { width: 10000.0 }.to_string(),
            "bucket:10000"
        );
    }

    #[test]
    fn applies_to_types() {
        let all = [
            oid::TEXT,
            oid::VARCHAR,
            oid::BPCHAR,
            oid::NAME,
            oid::INT2,
            oid::INT4,
            oid::INT8,
            oid::NUMERIC,
            oid::FLOAT4,
            oid::FLOAT8,
            oid::DATE,
            oid::TIMESTAMP,
            oid::TIMESTAMPTZ,
            oid::UUID,
            16, // bool
        ];
        let which = |m: &MaskMethod| -> Vec<u32> {
            all.iter().copied().filter(|&o| m.applies_to(o)).collect()
        };
        assert_eq!(which(&MaskMethod::Null), all.to_vec());
        let text = vec![oid::TEXT, oid::VARCHAR, oid::BPCHAR, oid::NAME];
        assert_eq!(which(&MaskMethod::Redact("x".into())), text);
        assert_eq!(which(&MaskMethod::Partial { keep: 2 }), text);
        assert_eq!(
            which(&MaskMethod::Hash),
            [
                text.clone(),
                vec![oid::INT2, oid::INT4, oid::INT8, oid::NUMERIC, oid::UUID]
            ]
            .concat()
        );
        assert_eq!(
            which(&MaskMethod::Year),
            vec![oid::DATE, oid::TIMESTAMP, oid::TIMESTAMPTZ]
        );
        assert_eq!(
            which(&MaskMethod::Bucket { width: 10.0 }),
            vec![
                oid::INT2,
                oid::INT4,
                oid::INT8,
                oid::NUMERIC,
                oid::FLOAT4,
                oid::FLOAT8
            ]
        );
        assert_eq!(
            which(&MaskMethod::Bucket { width: 0.5 }),
            vec![oid::NUMERIC, oid::FLOAT4, oid::FLOAT8]
        );
    }
}

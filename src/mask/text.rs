//! `redact` and `partial`, for text-like types only. Their text and binary
//! encodings are the same bytes, so the format does not matter here.
//!
//! Each function writes the masked value to `out` and returns `None` when the
//! cell must become NULL (the caller then discards anything written).

use super::oid::{kind, Kind};
use bytes::{BufMut, BytesMut};

/// The fixed `text` for text-like types.
pub(super) fn redact(text: &str, oid: u32, out: &mut BytesMut) -> Option<()> {
    if !matches!(kind(oid), Kind::Text { .. }) {
        return None;
    }
    out.put_slice(text.as_bytes());
    Some(())
}

/// All but the last `keep` characters of a UTF-8 value replaced with `*`.
pub(super) fn partial(keep: usize, oid: u32, value: &[u8], out: &mut BytesMut) -> Option<()> {
    if !matches!(kind(oid), Kind::Text { .. }) {
        return None;
    }
    let (hidden, tail) = if value.is_ascii() {
        let n = value.len().saturating_sub(keep);
        (n, n)
    } else {
        // Not UTF-8 (another client_encoding) cannot be cut at characters.
        let s = std::str::from_utf8(value).ok()?;
        let n = s.chars().count().saturating_sub(keep);
        let at = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
        (n, at)
    };
    out.reserve(hidden + value.len().saturating_sub(tail));
    out.put_bytes(b'*', hidden);
    out.put_slice(value.get(tail..)?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::oid;
    use super::*;

    fn run(keep: usize, oid: u32, v: &str) -> Option<String> {
        let mut out = BytesMut::new();
        partial(keep, oid, v.as_bytes(), &mut out)?;
        String::from_utf8(out.to_vec()).ok()
    }

    #[test]
    fn partial_keeps_the_tail_and_the_length() {
        assert_eq!(
            run(4, oid::TEXT, "123-45-6789").as_deref(),
            Some("*******6789")
        );
        assert_eq!(run(0, oid::TEXT, "secret").as_deref(), Some("******"));
        assert_eq!(run(2, oid::VARCHAR, "ab").as_deref(), Some("ab"));
        assert_eq!(run(9, oid::NAME, "ab").as_deref(), Some("ab"));
        assert_eq!(run(3, oid::TEXT, "").as_deref(), Some(""));
        assert_eq!(run(3, oid::BPCHAR, "ab   ").as_deref(), Some("**   "));
    }

    #[test]
    fn partial_counts_characters_not_bytes() {
        assert_eq!(
            run(2, oid::TEXT, "Zoë Müller").as_deref(),
            Some("********er")
        );
        assert_eq!(run(3, oid::TEXT, "café€").as_deref(), Some("**fé€"));
        assert_eq!(run(0, oid::TEXT, "éé").as_deref(), Some("**"));
        assert_eq!(run(5, oid::TEXT, "éé").as_deref(), Some("éé"));
    }

    #[test]
    fn partial_of_invalid_utf8_is_null() {
        let mut out = BytesMut::new();
        assert_eq!(partial(2, oid::TEXT, b"ab\xff\xfecd", &mut out), None);
    }

    #[test]
    fn text_methods_null_other_types() {
        let mut out = BytesMut::new();
        assert_eq!(partial(2, oid::INT4, b"1234", &mut out), None);
        assert_eq!(redact("X", oid::DATE, &mut out), None);
        assert_eq!(redact("X", oid::UUID, &mut out), None);
        assert!(out.is_empty());
        assert_eq!(redact("X", oid::BPCHAR, &mut out), Some(()));
        assert_eq!(&out[..], b"X");
    }
}

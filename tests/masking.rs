//! Masked cells are values PostgreSQL itself reads back as the expected
//! values: inputs come from a real server in both result formats, masked
//! binary cells are sent back as binary parameters (through the type's
//! `_recv` function) and masked text cells are cast from text.

mod common;

use bytes::BytesMut;
use common::*;
use pgwarden::mask::{mask_cell, oid, CellMask, HashKey, MaskMethod};
use std::error::Error;
use std::sync::Arc;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A binary result cell's raw bytes, whatever its type.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Raw bytes sent as a binary parameter of whatever type the server infers.
#[derive(Debug)]
struct RawParam(Vec<u8>);

impl ToSql for RawParam {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn mask(method: &str, type_oid: u32, binary: bool, value: &[u8]) -> Option<Vec<u8>> {
    let m = CellMask {
        method: Arc::new(MaskMethod::parse(method).expect("valid method")),
        type_oid,
        binary,
    };
    mask_cell(&m, &HashKey::new(b"integration key"), Some(value))
}

/// `expr` as the server sends it in binary (extended protocol).
async fn binary_of(c: &Client, expr: &str) -> Vec<u8> {
    let row = c
        .query_one(&format!("SELECT {expr}"), &[])
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    row.get::<_, Raw>(0).0
}

/// `expr` as the server sends it in text (simple protocol).
async fn text_of(c: &Client, expr: &str) -> String {
    let msgs = c
        .simple_query(&format!("SELECT {expr}"))
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{expr}: no value"))
}

/// Binary cell `bytes` of type `ty`, read by the server and printed as text.
async fn decode_binary(c: &Client, ty: &str, bytes: &[u8]) -> String {
    let row = c
        .query_one(
            &format!("SELECT $1::{ty}::text"),
            &[&RawParam(bytes.to_vec())],
        )
        .await
        .unwrap_or_else(|e| panic!("server rejects masked {ty} {bytes:?}: {e}"));
    row.get(0)
}

/// Whether text cell `text`, cast to `ty` by the server, equals `expected`.
async fn text_equals(c: &Client, ty: &str, text: &str, expected: &str) -> bool {
    c.query_one(
        &format!("SELECT $1::text::{ty} = ({expected})::{ty}"),
        &[&text],
    )
    .await
    .unwrap_or_else(|e| panic!("server rejects masked {ty} {text:?}: {e}"))
    .get(0)
}

/// Masks `input` (an SQL expression of type `ty`) in both formats and checks
/// that the server reads each result as `expected` (also an expression).
async fn check(c: &Client, method: &str, type_oid: u32, ty: &str, input: &str, expected: &str) {
    let input = format!("({input})::{ty}");
    let expected = format!("({expected})::{ty}");
    let what = format!("{method} of {input}");

    let raw = binary_of(c, &input).await;
    let masked = mask(method, type_oid, true, &raw).unwrap_or_else(|| panic!("{what}: NULL"));
    assert_eq!(
        decode_binary(c, ty, &masked).await,
        text_of(c, &expected).await,
        "{what}, binary"
    );
    // Byte for byte what the server itself sends for the expected value;
    // except numeric infinities, whose dscale word PostgreSQL fills with
    // bits of its internal header (32) and ignores on input.
    if !(ty == "numeric" && expected.contains("Infinity")) {
        assert_eq!(
            masked,
            binary_of(c, &expected).await,
            "{what}, binary bytes"
        );
    }

    let text = text_of(c, &input).await;
    let masked = mask(method, type_oid, false, text.as_bytes())
        .unwrap_or_else(|| panic!("{what}: NULL from text {text:?}"));
    let masked = String::from_utf8(masked).expect("utf8");
    assert!(
        text_equals(c, ty, &masked, &expected).await,
        "{what}: text {text:?} -> {masked:?}, want {expected}"
    );
}

async fn client() -> Client {
    let pg = pg();
    let c = superuser(&pg, "postgres").await;
    c.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'")
        .await
        .expect("session settings");
    c
}

#[tokio::test]
async fn bucket_numeric() {
    let c = client().await;
    let n = "numeric";
    check(
        &c,
        "bucket:10000",
        oid::NUMERIC,
        n,
        "123456.78",
        "120000.00",
    )
    .await;
    check(
        &c,
        "bucket:10000",
        oid::NUMERIC,
        n,
        "-123456.78",
        "-130000.00",
    )
    .await;
    check(&c, "bucket:10000", oid::NUMERIC, n, "9999.99", "0.00").await;
    check(
        &c,
        "bucket:5000",
        oid::NUMERIC,
        n,
        "98765.4321",
        "95000.0000",
    )
    .await;
    check(&c, "bucket:0.25", oid::NUMERIC, n, "-1.3", "-1.50").await;
    check(
        &c,
        "bucket:7",
        oid::NUMERIC,
        n,
        "1e40",
        "9999999999999999999999999999999999999996",
    )
    .await;
    check(&c, "bucket:0.001", oid::NUMERIC, n, "0.000123", "0.000000").await;
    check(&c, "bucket:10", oid::NUMERIC, n, "'NaN'", "'NaN'").await;
    check(&c, "bucket:10", oid::NUMERIC, n, "'Infinity'", "'Infinity'").await;
    check(
        &c,
        "bucket:10",
        oid::NUMERIC,
        n,
        "'-Infinity'",
        "'-Infinity'",
    )
    .await;
    // The text form keeps the display scale, as numeric_out would print it.
    let raw = text_of(&c, "123456.78::numeric").await;
    let masked = mask("bucket:10000", oid::NUMERIC, false, raw.as_bytes()).expect("masked");
    assert_eq!(masked, text_of(&c, "120000.00::numeric").await.into_bytes());
}

#[tokio::test]
async fn bucket_integers_and_floats() {
    let c = client().await;
    for (t, o) in [
        ("int2", oid::INT2),
        ("int4", oid::INT4),
        ("int8", oid::INT8),
    ] {
        check(&c, "bucket:1000", o, t, "12345", "12000").await;
        check(&c, "bucket:1000", o, t, "-12345", "-13000").await;
    }
    check(
        &c,
        "bucket:1000",
        oid::INT8,
        "int8",
        "9223372036854775807",
        "9223372036854775000",
    )
    .await;
    // Out of range after rounding down: NULL in both formats.
    let raw = binary_of(&c, "(-32768)::int2").await;
    assert_eq!(mask("bucket:1000", oid::INT2, true, &raw), None);
    assert_eq!(mask("bucket:1000", oid::INT2, false, b"-32768"), None);

    for (t, o) in [("float4", oid::FLOAT4), ("float8", oid::FLOAT8)] {
        check(&c, "bucket:100", o, t, "1234.5", "1200").await;
        check(&c, "bucket:0.5", o, t, "-1.2", "-1.5").await;
        check(&c, "bucket:100", o, t, "'NaN'", "'NaN'").await;
        check(&c, "bucket:100", o, t, "'-Infinity'", "'-Infinity'").await;
    }
    // Printed with an exponent, as PostgreSQL does.
    check(&c, "bucket:1", oid::FLOAT8, "float8", "1e300", "1e300").await;
    let masked = mask("bucket:1", oid::FLOAT8, false, b"1e+300").expect("masked");
    assert_eq!(masked, text_of(&c, "1e300::float8").await.into_bytes());
}

#[tokio::test]
async fn year_dates_and_timestamps() {
    let c = client().await;
    check(
        &c,
        "year",
        oid::DATE,
        "date",
        "'1985-03-14'",
        "'1985-01-01'",
    )
    .await;
    check(
        &c,
        "year",
        oid::DATE,
        "date",
        "'2000-12-31'",
        "'2000-01-01'",
    )
    .await;
    check(
        &c,
        "year",
        oid::DATE,
        "date",
        "'0044-03-15 BC'",
        "'0044-01-01 BC'",
    )
    .await;
    check(&c, "year", oid::DATE, "date", "'infinity'", "'infinity'").await;
    check(&c, "year", oid::DATE, "date", "'-infinity'", "'-infinity'").await;
    let ts = "timestamp";
    check(
        &c,
        "year",
        oid::TIMESTAMP,
        ts,
        "'1985-03-14 10:11:12.5'",
        "'1985-01-01'",
    )
    .await;
    check(
        &c,
        "year",
        oid::TIMESTAMP,
        ts,
        "'1999-12-31 23:59:59.999999'",
        "'1999-01-01'",
    )
    .await;
    check(
        &c,
        "year",
        oid::TIMESTAMP,
        ts,
        "'0001-06-01 12:00 BC'",
        "'0001-01-01 BC'",
    )
    .await;
    check(&c, "year", oid::TIMESTAMP, ts, "'infinity'", "'infinity'").await;
    let tz = "timestamptz";
    check(
        &c,
        "year",
        oid::TIMESTAMPTZ,
        tz,
        "'1985-03-14 10:11:12+02'",
        "'1985-01-01 UTC'",
    )
    .await;
    check(
        &c,
        "year",
        oid::TIMESTAMPTZ,
        tz,
        "'-infinity'",
        "'-infinity'",
    )
    .await;
    // Exact text in a UTC session: what the server prints for the expected value.
    let raw = text_of(&c, "'1985-03-14 10:11:12.5'::timestamp").await;
    let masked = mask("year", oid::TIMESTAMP, false, raw.as_bytes()).expect("masked");
    assert_eq!(
        masked,
        text_of(&c, "'1985-01-01'::timestamp").await.into_bytes()
    );
    let raw = text_of(&c, "'1985-03-14 10:11:12+02'::timestamptz").await;
    let masked = mask("year", oid::TIMESTAMPTZ, false, raw.as_bytes()).expect("masked");
    assert_eq!(
        masked,
        text_of(&c, "'1985-01-01 UTC'::timestamptz")
            .await
            .into_bytes()
    );
}

#[tokio::test]
async fn year_timestamptz_truncates_in_utc_in_any_time_zone() {
    let c = client().await;
    c.batch_execute("SET TimeZone = 'Asia/Kolkata'")
        .await
        .expect("tz");
    let tz = "timestamptz";
    // Local text shows +05:30; both formats land on January 1st UTC.
    check(
        &c,
        "year",
        oid::TIMESTAMPTZ,
        tz,
        "'1985-03-14 10:11:12+02'",
        "'1985-01-01 UTC'",
    )
    .await;
    // Already 1986 locally, still 1985 in UTC.
    check(
        &c,
        "year",
        oid::TIMESTAMPTZ,
        tz,
        "'1985-12-31 20:00 UTC'",
        "'1985-01-01 UTC'",
    )
    .await;
    let raw = text_of(&c, "'1985-12-31 20:00 UTC'::timestamptz").await;
    assert_eq!(raw, "1986-01-01 01:30:00+05:30");
    // Non-ISO DateStyle text is not understood: NULL, never the original.
    c.batch_execute("SET DateStyle = 'SQL, DMY'")
        .await
        .expect("datestyle");
    let raw = text_of(&c, "'1985-03-14 10:11:12+02'::timestamptz").await;
    assert_eq!(
        mask("year", oid::TIMESTAMPTZ, false, raw.as_bytes()),
        None,
        "{raw}"
    );
    let raw = text_of(&c, "'1985-03-14'::date").await;
    assert_eq!(
        mask("year", oid::DATE, false, raw.as_bytes()),
        None,
        "{raw}"
    );
}

#[tokio::test]
async fn hash_is_the_same_value_in_both_formats() {
    let c = client().await;
    // (type to cast the input to, type to read a masked cell as, OID, input)
    for (ty, read_as, o, input) in [
        ("int2", "int2", oid::INT2, "-42"),
        ("int4", "int4", oid::INT4, "42"),
        ("int8", "int8", oid::INT8, "9000000000"),
        ("numeric", "numeric", oid::NUMERIC, "12345.670"),
        ("numeric", "numeric", oid::NUMERIC, "-0.5"),
        (
            "uuid",
            "uuid",
            oid::UUID,
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        ),
        ("text", "text", oid::TEXT, "'alice'"),
        ("varchar", "varchar", oid::VARCHAR, "'alice'"),
        ("char(8)", "bpchar", oid::BPCHAR, "'alice'"),
        ("name", "name", oid::NAME, "'alice'"),
    ] {
        let expr = format!("({input})::{ty}");
        let from_binary = mask("hash", o, true, &binary_of(&c, &expr).await).expect("hashed");
        let from_text =
            mask("hash", o, false, text_of(&c, &expr).await.as_bytes()).expect("hashed");
        let from_text = String::from_utf8(from_text).expect("utf8");
        assert_eq!(
            decode_binary(&c, read_as, &from_binary).await,
            from_text,
            "{expr}"
        );
        assert_ne!(from_text, text_of(&c, &expr).await, "{expr} not masked");
        // The text result is a valid value of the type too.
        let back: String = c
            .query_one(&format!("SELECT $1::text::{read_as}::text"), &[&from_text])
            .await
            .unwrap_or_else(|e| panic!("{expr}: {from_text:?}: {e}"))
            .get(0);
        assert_eq!(back, from_text, "{expr}");
    }
    // char(n) padding is not part of the pseudonym: joins with text still match.
    let padded = mask(
        "hash",
        oid::BPCHAR,
        false,
        text_of(&c, "'bob'::char(10)").await.as_bytes(),
    );
    assert_eq!(padded, mask("hash", oid::TEXT, false, b"bob"));
}

#[tokio::test]
async fn null_redact_and_partial() {
    let c = client().await;
    let raw = text_of(&c, "'4111 1111 1111 1234'::varchar").await;
    let masked = mask("partial:4", oid::VARCHAR, false, raw.as_bytes()).expect("masked");
    assert_eq!(masked, b"***************1234");
    let bin = binary_of(&c, "'Zoë Müller'::text").await;
    let masked = mask("partial:3", oid::TEXT, true, &bin).expect("masked");
    assert_eq!(decode_binary(&c, "text", &masked).await, "*******ler");
    let masked = mask(
        "redact",
        oid::BPCHAR,
        true,
        &binary_of(&c, "'x'::char(3)").await,
    );
    assert_eq!(
        decode_binary(&c, "text", &masked.expect("masked")).await,
        "REDACTED"
    );
    for (expr, o) in [
        ("7::int4", oid::INT4),
        ("1.5", oid::NUMERIC),
        ("current_date", oid::DATE),
    ] {
        let bin = binary_of(&c, expr).await;
        assert!(!bin.is_empty());
        assert_eq!(mask("null", o, true, &bin), None);
    }
    assert_eq!(
        mask("redact", oid::INT4, true, &binary_of(&c, "7::int4").await),
        None
    );
}

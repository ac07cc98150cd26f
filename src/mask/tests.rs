//! Every method × type × format through the public API, and DataRow rewriting.

use super::oid::*;
use super::*;

const ALL: [u32; 15] = [
    TEXT,
    VARCHAR,
    BPCHAR,
    NAME,
    INT2,
    INT4,
    INT8,
    NUMERIC,
    FLOAT4,
    FLOAT8,
    DATE,
    TIMESTAMP,
    TIMESTAMPTZ,
    UUID,
    16, // bool: a type no method knows
];

fn key() -> HashKey {
    HashKey::new(b"test key")
}

fn cm(method: &str, type_oid: u32, binary: bool) -> CellMask {
    CellMask {
        method: Arc::new(MaskMethod::parse(method).expect("valid method")),
        type_oid,
        binary,
    }
}

fn mask(method: &str, oid: u32, binary: bool, v: &[u8]) -> Option<Vec<u8>> {
    mask_cell(&cm(method, oid, binary), &key(), Some(v))
}

fn mask_text(method: &str, oid: u32, v: &str) -> Option<String> {
    mask(method, oid, false, v.as_bytes()).map(|b| String::from_utf8(b).expect("utf8"))
}

/// A sample value of every type, in both encodings.
fn sample(oid: u32, binary: bool) -> Vec<u8> {
    match (oid, binary) {
        (TEXT | VARCHAR | NAME, _) => b"secret value".to_vec(),
        (BPCHAR, _) => b"secret    ".to_vec(),
        (INT2, false) | (INT4, false) | (INT8, false) => b"12345".to_vec(),
        (INT2, true) => 12345i16.to_be_bytes().to_vec(),
        (INT4, true) => 12345i32.to_be_bytes().to_vec(),
        (INT8, true) => 12345i64.to_be_bytes().to_vec(),
        (NUMERIC, false) => b"12345.67".to_vec(),
        (NUMERIC, true) => [&[0, 3, 0, 1, 0, 0, 0, 2][..], &[0, 1, 9, 41, 26, 44]].concat(),
        (FLOAT4, false) | (FLOAT8, false) => b"12345.7".to_vec(),
        (FLOAT4, true) => 12345.7f32.to_be_bytes().to_vec(),
        (FLOAT8, true) => 12345.7f64.to_be_bytes().to_vec(),
        (DATE, false) => b"1985-03-14".to_vec(),
        (DATE, true) => (-5406i32).to_be_bytes().to_vec(),
        (TIMESTAMP, false) => b"1985-03-14 10:11:12".to_vec(),
        (TIMESTAMPTZ, false) => b"1985-03-14 10:11:12+02".to_vec(),
        (TIMESTAMP | TIMESTAMPTZ, true) => (-467_214_528_000_000i64).to_be_bytes().to_vec(),
        (UUID, false) => b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_vec(),
        (UUID, true) => vec![7; 16],
        _ => b"t".to_vec(),
    }
}

#[test]
fn numeric_sample_is_right() {
    assert_eq!(
        mask_text("bucket:0.01", NUMERIC, "12345.67").as_deref(),
        Some("12345.67")
    );
    let bin = sample(NUMERIC, true);
    assert_eq!(
        mask("bucket:0.01", NUMERIC, true, &bin).as_deref(),
        Some(&bin[..])
    );
}

#[test]
fn null_input_stays_null_under_every_method() {
    for method in ["null", "redact", "partial:2", "hash", "year", "bucket:10"] {
        for oid in ALL {
            for binary in [false, true] {
                assert_eq!(mask_cell(&cm(method, oid, binary), &key(), None), None);
            }
        }
    }
}

#[test]
fn null_method_nulls_every_type() {
    for oid in ALL {
        for binary in [false, true] {
            assert_eq!(mask("null", oid, binary, &sample(oid, binary)), None);
        }
    }
}

/// Methods produce a value exactly for the types `applies_to` names, and a
/// masked value is never the original.
#[test]
fn values_exactly_where_the_method_applies() {
    for method in [
        "redact",
        "partial:3",
        "hash",
        "year",
        "bucket:10",
        "bucket:0.5",
    ] {
        let m = MaskMethod::parse(method).expect("valid");
        for oid in ALL {
            for binary in [false, true] {
                let v = sample(oid, binary);
                let got = mask(method, oid, binary, &v);
                assert_eq!(got.is_some(), m.applies_to(oid), "{method} {oid} {binary}");
                assert_ne!(
                    got.as_deref(),
                    Some(&v[..]),
                    "{method} {oid} {binary} leaked"
                );
            }
        }
    }
}

#[test]
fn redact_text_types() {
    for oid in [TEXT, VARCHAR, BPCHAR, NAME] {
        for binary in [false, true] {
            assert_eq!(
                mask("redact", oid, binary, b"alice").as_deref(),
                Some(&b"REDACTED"[..])
            );
            assert_eq!(
                mask("redact:[hidden]", oid, binary, b"alice").as_deref(),
                Some(&b"[hidden]"[..])
            );
        }
    }
}

#[test]
fn partial_text_types() {
    for oid in [TEXT, VARCHAR, NAME] {
        for binary in [false, true] {
            assert_eq!(
                mask("partial:4", oid, binary, "4111 1111 1111 1234".as_bytes()).as_deref(),
                Some("***************1234".as_bytes())
            );
        }
    }
    assert_eq!(
        mask_text("partial:2", BPCHAR, "ab  ").as_deref(),
        Some("**  ")
    );
    assert_eq!(mask("partial:2", TEXT, false, b"\xc3\x28ab"), None);
}

#[test]
fn hash_text_types_is_keyed_hex_and_stable() {
    let k2 = HashKey::new(b"another key");
    for oid in [TEXT, VARCHAR, BPCHAR, NAME] {
        let a = mask_text("hash", oid, "alice").expect("hashed");
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(mask_text("hash", oid, "alice"), Some(a.clone()));
        assert_eq!(
            mask("hash", oid, true, b"alice"),
            Some(a.clone().into_bytes())
        );
        assert_ne!(mask_text("hash", oid, "alicf"), Some(a.clone()));
        let other = mask_cell(&cm("hash", oid, false), &k2, Some(b"alice"));
        assert_ne!(other, Some(a.into_bytes()));
    }
}

#[test]
fn hash_ints_same_in_both_formats() {
    for (oid, size) in [(INT2, 2), (INT4, 4), (INT8, 8)] {
        for v in [42i64, -1, 0, 32767] {
            let text = mask_text("hash", oid, &v.to_string()).expect("text hashed");
            let bin_in = &v.to_be_bytes()[8 - size..];
            let bin = mask("hash", oid, true, bin_in).expect("binary hashed");
            assert_eq!(bin.len(), size);
            let mut wide = if bin.first().is_some_and(|b| b & 0x80 != 0) {
                [0xff; 8]
            } else {
                [0; 8]
            };
            wide[8 - size..].copy_from_slice(&bin);
            assert_eq!(text, i64::from_be_bytes(wide).to_string(), "{oid} {v}");
            assert_ne!(text, v.to_string());
        }
        // int4 42 and int8 42 agree where the ranges overlap (same HMAC).
    }
    let h8: i64 = mask_text("hash", INT8, "42")
        .and_then(|s| s.parse().ok())
        .expect("int8");
    let h2: i64 = mask_text("hash", INT2, "42")
        .and_then(|s| s.parse().ok())
        .expect("int2");
    assert_eq!(h8 as i16 as i64, h2);
    let other = mask_cell(&cm("hash", INT8, false), &HashKey::new(b"k2"), Some(b"42"));
    assert_ne!(other, mask("hash", INT8, false, b"42"));
    for bad in [&b"4x"[..], b"", b"70000"] {
        assert_eq!(mask("hash", INT2, false, bad), None);
    }
    assert_eq!(mask("hash", INT4, true, &[0, 0, 42]), None);
}

#[test]
fn hash_numeric_is_an_integer_same_in_both_formats() {
    let text = mask_text("hash", NUMERIC, "12345.67").expect("hashed");
    assert!(
        text.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit()),
        "{text}"
    );
    let bin = mask("hash", NUMERIC, true, &sample(NUMERIC, true)).expect("hashed");
    // Its binary form is the same integer: bucket:1 of it is itself.
    assert_eq!(
        mask("bucket:1", NUMERIC, false, text.as_bytes()).map(|t| t.len()),
        Some(text.len())
    );
    let back = mask("bucket:1", NUMERIC, true, &bin).expect("valid numeric");
    assert_eq!(back, bin);
    let bin_as_text = {
        let mut out = BytesMut::new();
        let n = numeric::read(true, &bin).expect("numeric");
        numeric::write_text(&n, &mut out);
        String::from_utf8(out.to_vec()).expect("utf8")
    };
    assert_eq!(bin_as_text, text);
    // The display scale is part of the value's text: 1.5 and 1.50 differ.
    assert_ne!(
        mask_text("hash", NUMERIC, "1.5"),
        mask_text("hash", NUMERIC, "1.50")
    );
    assert!(mask_text("hash", NUMERIC, "NaN").is_some());
    assert_eq!(mask_text("hash", NUMERIC, "12,5"), None);
}

#[test]
fn hash_uuid_same_in_both_formats() {
    let t = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let text = mask_text("hash", UUID, t).expect("hashed");
    assert_eq!(text.len(), 36);
    assert_ne!(text, t);
    assert_eq!(text.as_bytes()[14], b'8', "version 8: {text}");
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&t.replace('-', "")[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let bin = mask("hash", UUID, true, &raw).expect("hashed");
    assert_eq!(bin.len(), 16);
    let bin_hex: String = bin.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(bin_hex, text.replace('-', ""));
    assert_eq!(mask("hash", UUID, false, b"not-a-uuid"), None);
}

#[test]
fn year_through_the_api() {
    assert_eq!(
        mask_text("year", DATE, "1985-03-14").as_deref(),
        Some("1985-01-01")
    );
    assert_eq!(
        mask_text("year", TIMESTAMP, "1985-03-14 10:11:12.5").as_deref(),
        Some("1985-01-01 00:00:00")
    );
    assert_eq!(
        mask_text("year", TIMESTAMPTZ, "1985-03-14 10:11:12+02").as_deref(),
        Some("1985-01-01 00:00:00+00")
    );
    // 1985-03-14 is day -5406 of 2000; 1985-01-01 is day -5478.
    assert_eq!(
        mask("year", DATE, true, &(-5406i32).to_be_bytes()),
        Some((-5478i32).to_be_bytes().to_vec())
    );
    let ts = (-5406i64 * 86_400 + 36_672) * 1_000_000;
    for oid in [TIMESTAMP, TIMESTAMPTZ] {
        assert_eq!(
            mask("year", oid, true, &ts.to_be_bytes()),
            Some((-5478i64 * 86_400_000_000).to_be_bytes().to_vec())
        );
    }
    assert_eq!(mask_text("year", DATE, "14/03/1985"), None);
}

#[test]
fn bucket_ints() {
    assert_eq!(
        mask_text("bucket:1000", INT4, "123456").as_deref(),
        Some("123000")
    );
    assert_eq!(
        mask_text("bucket:1000", INT4, "-1").as_deref(),
        Some("-1000")
    );
    assert_eq!(mask_text("bucket:7", INT8, "-9223372036854775808"), None);
    assert_eq!(
        mask_text("bucket:1", INT8, "-9223372036854775808").as_deref(),
        Some("-9223372036854775808")
    );
    assert_eq!(
        mask("bucket:1000", INT2, true, &12345i16.to_be_bytes()),
        Some(12000i16.to_be_bytes().to_vec())
    );
    // -32768 rounds down to -33000: out of int2's range.
    assert_eq!(
        mask("bucket:1000", INT2, true, &i16::MIN.to_be_bytes()),
        None
    );
    assert_eq!(mask_text("bucket:1000", INT2, "-32768"), None);
    assert_eq!(mask_text("bucket:1e30", INT8, "5").as_deref(), Some("0"));
    assert_eq!(mask_text("bucket:1e30", INT8, "-5"), None);
    assert_eq!(mask_text("bucket:2.5", INT4, "7"), None);
    assert_eq!(mask("bucket:10", INT8, true, &[1, 2, 3]), None);
}

#[test]
fn bucket_floats() {
    assert_eq!(
        mask_text("bucket:0.5", FLOAT8, "1.7").as_deref(),
        Some("1.5")
    );
    assert_eq!(
        mask_text("bucket:10", FLOAT8, "-0.5").as_deref(),
        Some("-10")
    );
    assert_eq!(
        mask_text("bucket:10", FLOAT4, "12345.5").as_deref(),
        Some("12340")
    );
    assert_eq!(
        mask_text("bucket:10", FLOAT8, "NaN").as_deref(),
        Some("NaN")
    );
    assert_eq!(
        mask_text("bucket:10", FLOAT8, "-Infinity").as_deref(),
        Some("-Infinity")
    );
    assert_eq!(mask_text("bucket:1e300", FLOAT4, "-1"), None);
    assert_eq!(
        mask("bucket:100", FLOAT8, true, &1234.5f64.to_be_bytes()),
        Some(1200f64.to_be_bytes().to_vec())
    );
    assert_eq!(
        mask("bucket:100", FLOAT4, true, &(-1234.5f32).to_be_bytes()),
        Some((-1300f32).to_be_bytes().to_vec())
    );
    let nan = mask("bucket:100", FLOAT4, true, &f32::NAN.to_be_bytes()).expect("kept");
    assert!(f32::from_be_bytes(nan[..].try_into().expect("4")).is_nan());
    assert_eq!(mask_text("bucket:10", FLOAT8, "ten"), None);
}

#[test]
fn bucket_numerics() {
    assert_eq!(
        mask_text("bucket:10000", NUMERIC, "123456.78").as_deref(),
        Some("120000.00")
    );
    assert_eq!(
        mask_text("bucket:10000", NUMERIC, "Infinity").as_deref(),
        Some("Infinity")
    );
    assert_eq!(
        mask_text("bucket:0.1", NUMERIC, "-0.05").as_deref(),
        Some("-0.10")
    );
    // 123456.78 in binary: weight 1, dscale 2, digits 12 3456 7800.
    let v = [&[0, 3, 0, 1, 0, 0, 0, 2][..], &[0, 12, 13, 128, 30, 120]].concat();
    let want = [&[0, 1, 0, 1, 0, 0, 0, 2][..], &[0, 12]].concat();
    assert_eq!(mask("bucket:10000", NUMERIC, true, &v), Some(want));
    let nan = [0, 0, 0, 0, 0xc0, 0, 0, 0];
    assert_eq!(mask("bucket:10", NUMERIC, true, &nan), Some(nan.to_vec()));
    assert_eq!(mask("bucket:10", NUMERIC, true, &v[..9]), None);
}

/// A DataRow body from cells.
fn body(cells: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = (cells.len() as i16).to_be_bytes().to_vec();
    for c in cells {
        match c {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
    b
}

/// The cells of a complete DataRow message, checking its framing.
fn cells(msg: &[u8]) -> Vec<Option<Vec<u8>>> {
    assert_eq!(msg[0], b'D');
    assert_eq!(
        i32::from_be_bytes(msg[1..5].try_into().unwrap()) as usize,
        msg.len() - 1
    );
    let n = i16::from_be_bytes(msg[5..7].try_into().unwrap());
    let mut pos = 7;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = i32::from_be_bytes(msg[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if len < 0 {
            out.push(None);
        } else {
            out.push(Some(msg[pos..pos + len as usize].to_vec()));
            pos += len as usize;
        }
    }
    assert_eq!(pos, msg.len());
    out
}

fn plan() -> Vec<Option<CellMask>> {
    vec![
        None,
        Some(cm("partial:2", TEXT, false)),
        None,
        None,
        Some(cm("bucket:1000", INT4, true)),
        Some(cm("year", DATE, false)),
        Some(cm("redact", INT4, false)),
        None,
    ]
}

#[test]
fn rewrites_a_row() {
    let row = body(&[
        Some(b"1"),
        Some(b"secret"),
        None,
        Some(b""),
        Some(&123_456i32.to_be_bytes()),
        Some(b"1985-03-14"),
        Some(b"77"),
        Some(b"tail"),
    ]);
    let mut out = BytesMut::from(&b"prefix"[..]);
    rewrite_data_row(&row, &plan(), &key(), &mut out).expect("rewritten");
    assert_eq!(&out[..6], b"prefix");
    let got = cells(&out[6..]);
    let want: Vec<Option<Vec<u8>>> = vec![
        Some(b"1".to_vec()),
        Some(b"****et".to_vec()),
        None,
        Some(vec![]),
        Some(123_000i32.to_be_bytes().to_vec()),
        Some(b"1985-01-01".to_vec()),
        None, // redact of an int4: NULL
        Some(b"tail".to_vec()),
    ];
    assert_eq!(got, want);
}

#[test]
fn masked_null_cells_stay_null() {
    let row = body(&[None, None, None, None, None, None, None, None]);
    let mut out = BytesMut::new();
    rewrite_data_row(&row, &plan(), &key(), &mut out).expect("rewritten");
    assert_eq!(cells(&out), vec![None; 8]);
}

#[test]
fn unmasked_rows_are_copied() {
    let row = body(&[Some(b"a"), None, Some(b"bc")]);
    let mut out = BytesMut::new();
    rewrite_data_row(&row, &[None, None, None], &key(), &mut out).expect("copied");
    assert_eq!(&out[5..], &row[..]);
    let empty = body(&[]);
    out.clear();
    rewrite_data_row(&empty, &[], &key(), &mut out).expect("copied");
    assert_eq!(&out[..], &[b'D', 0, 0, 0, 6, 0, 0]);
}

#[test]
fn every_truncation_is_an_error_and_leaves_out_alone() {
    let row = body(&[
        Some(b"1"),
        Some(b"secret"),
        None,
        Some(b""),
        Some(&123_456i32.to_be_bytes()),
        Some(b"1985-03-14"),
        Some(b"77"),
        Some(b"tail"),
    ]);
    for cut in 0..row.len() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let r = rewrite_data_row(&row[..cut], &plan(), &key(), &mut out);
        assert!(r.is_err(), "cut at {cut}");
        assert_eq!(&out[..], b"kept", "cut at {cut}");
    }
}

#[test]
fn malformed_rows_are_errors() {
    let mut out = BytesMut::new();
    let one = [Some(cm("partial:1", TEXT, false))];
    let check = |b: &[u8], out: &mut BytesMut| {
        let r = rewrite_data_row(b, &one, &key(), out);
        assert!(r.is_err(), "{b:?}");
        assert!(out.is_empty());
    };
    check(&[0xff, 0xff], &mut out); // negative count
    check(&body(&[Some(b"a"), Some(b"b")]), &mut out); // count differs from plan
    check(&[0, 1, 0xff, 0xff, 0xff, 0xfe], &mut out); // length -2
    check(&[0, 1, 0x7f, 0xff, 0xff, 0xff, b'a'], &mut out); // length beyond the body
    check(&[body(&[Some(b"a")]), vec![0]].concat(), &mut out); // trailing byte
    assert!(matches!(
        rewrite_data_row(&body(&[]), &one, &key(), &mut out),
        Err(MaskError::ColumnCount { row: 0, plan: 1 })
    ));
}

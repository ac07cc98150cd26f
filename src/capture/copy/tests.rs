use super::*;
use crate::capture::CaptureError;
use serde_json::{json, Value};

/// hr.salaries: (employee_id int4, amount numeric, bonus numeric,
/// currency bpchar, effective_from date), key (employee_id, effective_from).
const SALARIES: &[(&str, u32)] = &[
    ("employee_id", 23),
    ("amount", 1700),
    ("bonus", 1700),
    ("currency", 1042),
    ("effective_from", 1082),
];

/// The layout of `sql` into hr.salaries; captured: amount and bonus, or
/// amount alone when the statement does not send bonus.
fn salaries(sql: &str) -> Layout {
    let table: Vec<(String, u32)> = SALARIES.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    let key = ["employee_id".to_string(), "effective_from".to_string()];
    let columns = if sql.contains("salaries (") && !sql.contains("bonus") {
        vec!["amount".to_string()]
    } else {
        vec!["amount".to_string(), "bonus".to_string()]
    };
    layout(sql, 0, &key, &columns, &table).unwrap()
}

/// Reads `pieces` as one COPY's CopyData messages.
fn read(l: &Layout, pieces: &[&[u8]], cap: usize) -> Changes {
    let mut c = Changes::default();
    let mut copy = CopyIn::new(Arc::new(l.clone()));
    // Data before CopyInResponse is not this COPY's.
    copy.data(b"junk\n", &mut c, cap);
    copy.start();
    for p in pieces {
        copy.data(p, &mut c, cap);
    }
    copy.finish(&mut c, cap);
    // After CopyDone nothing more counts.
    copy.data(b"9\t9\t9\tX\t2024-01-01\n", &mut c, cap);
    c
}

/// (key, new) of every row kept.
fn rows(c: &Changes) -> Vec<(Value, Value)> {
    c.rows
        .iter()
        .map(|r| (json!(r.key), json!(r.new)))
        .collect()
}

/// The same rows whichever way the data is cut into messages.
fn every_split(l: &Layout, data: &[u8]) -> Changes {
    let whole = read(l, &[data], 100);
    for at in 0..=data.len() {
        let (a, b) = data.split_at(at);
        let split = read(l, &[a, b], 100);
        assert_eq!(rows(&split), rows(&whole), "split at {at}");
        assert_eq!(
            (split.total, split.malformed),
            (whole.total, whole.malformed),
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(rows(&read(l, &bytes, 100)), rows(&whole), "byte by byte");
    whole
}

#[test]
fn text_rows_split_anywhere() {
    let l = salaries("COPY hr.salaries FROM STDIN");
    let c = every_split(
        &l,
        b"3\t100.50\t\\N\tUSD\t2024-01-01\n4\t7\t1\tEUR\t2024-02-01\n",
    );
    assert_eq!(c.total, 2);
    assert_eq!(c.malformed, 0);
    assert_eq!(
        rows(&c),
        vec![
            (json!(["3", "2024-01-01"]), json!(["100.50", null])),
            (json!(["4", "2024-02-01"]), json!(["7", "1"])),
        ]
    );
}

#[test]
fn text_escapes_and_the_null_string() {
    let table = vec![("id".to_string(), 23), ("phone".to_string(), 25)];
    let l = layout(
        "COPY t (id, phone) FROM STDIN",
        0,
        &["id".into()],
        &["phone".into()],
        &table,
    )
    .unwrap();
    let data = b"1\ta\\tb\\\\c\\nd\\101\\x41\\x4g\\N\\q\\7\n2\t\\N\n3\t\\x\n";
    let c = every_split(&l, data);
    assert_eq!(
        rows(&c),
        vec![
            (json!(["1"]), json!(["a\tb\\c\nd\u{41}A\u{4}gNq\u{7}"])),
            (json!(["2"]), json!([null])),
            (json!(["3"]), json!(["x"])),
        ]
    );
    // A custom NULL and delimiter; `\N` is then an escaped N.
    let l = layout(
        "COPY t (id, phone) FROM STDIN WITH (DELIMITER '|', NULL 'nil')",
        0,
        &["id".into()],
        &["phone".into()],
        &table,
    )
    .unwrap();
    let c = every_split(&l, b"1|nil\r\n2|\\N\r\n3|nil2\r\n");
    assert_eq!(
        rows(&c),
        vec![
            (json!(["1"]), json!([null])),
            (json!(["2"]), json!(["N"])),
            (json!(["3"]), json!(["nil2"])),
        ]
    );
}

#[test]
fn text_header_end_marker_and_last_line_without_newline() {
    let table = vec![("id".to_string(), 23), ("phone".to_string(), 25)];
    let l = layout(
        "COPY t FROM STDIN (HEADER)",
        0,
        &["id".into()],
        &["phone".into()],
        &table,
    )
    .unwrap();
    let c = every_split(&l, b"id\tphone\n1\tx\n2\ty");
    assert_eq!(c.total, 2);
    assert_eq!(rows(&c)[1], (json!(["2"]), json!(["y"])));
    let c = every_split(&l, b"id\tphone\n1\tx\n\\.\n2\ty\n");
    assert_eq!(c.total, 1);
}

#[test]
fn csv_quotes_hold_delimiters_newlines_and_quotes() {
    let table = vec![("id".to_string(), 23), ("phone".to_string(), 25)];
    let l = layout(
        "COPY t FROM STDIN WITH (FORMAT csv, HEADER true)",
        0,
        &["id".into()],
        &["phone".into()],
        &table,
    )
    .unwrap();
    let data = b"id,\"ph\none\"\n1,\"a,b\"\n2,\"line\r\nbreak\"\n3,\"say \"\"hi\"\"\"\n4,\n5,\"\"\n6,x\"y\"z\r\n7,\\N\n";
    let c = every_split(&l, data);
    assert_eq!(c.malformed, 0);
    assert_eq!(
        rows(&c),
        vec![
            (json!(["1"]), json!(["a,b"])),
            (json!(["2"]), json!(["line\r\nbreak"])),
            (json!(["3"]), json!(["say \"hi\""])),
            // Unquoted empty is NULL, quoted empty is not.
            (json!(["4"]), json!([null])),
            (json!(["5"]), json!([""])),
            (json!(["6"]), json!(["xyz"])),
            (json!(["7"]), json!(["\\N"])),
        ]
    );
}

#[test]
fn csv_custom_quote_escape_and_null() {
    let table = vec![("id".to_string(), 23), ("phone".to_string(), 25)];
    let l = layout(
        "COPY t FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NULL')",
        0,
        &["id".into()],
        &["phone".into()],
        &table,
    )
    .unwrap();
    let c = every_split(&l, b"1;'it\\'s;\\\\ \\x'\n2;NULL\n3;'NULL'\n");
    assert_eq!(
        rows(&c),
        vec![
            (json!(["1"]), json!(["it's;\\ \\x"])),
            (json!(["2"]), json!([null])),
            (json!(["3"]), json!(["NULL"])),
        ]
    );
}

#[test]
fn malformed_rows_are_counted_and_reading_goes_on() {
    let l = salaries("COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN CSV");
    // Too few fields, too many, then a good row, then an open quote.
    let c = every_split(
        &l,
        b"1,2\n1,2,2024-01-01,4\n5,6,2024-01-01\n7,\"8,2024-01-01\n",
    );
    assert_eq!((c.total, c.malformed), (4, 3));
    assert_eq!(rows(&c), vec![(json!(["5", "2024-01-01"]), json!(["6"]))]);
    // A text escape cut off by the end.
    let l = salaries("COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN");
    let c = read(&l, &[b"1\t2\t3\\"], 10);
    assert_eq!((c.total, c.malformed), (1, 1));
}

#[test]
fn the_cap_keeps_counting() {
    let l = salaries("COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN");
    let c = read(&l, &[b"1\t1\td\n2\t2\td\n3\t3\td\n"], 1);
    assert_eq!((c.total, c.rows.len()), (3, 1));
}

fn binary_stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
    b.extend_from_slice(&0i32.to_be_bytes());
    // A header extension, skipped.
    b.extend_from_slice(&3i32.to_be_bytes());
    b.extend_from_slice(b"ext");
    for r in rows {
        b.extend_from_slice(&(r.len() as i16).to_be_bytes());
        for f in r {
            match f {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
    }
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b
}

fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [digits.len() as u16, weight as u16, sign, dscale] {
        b.extend_from_slice(&w.to_be_bytes());
    }
    for d in digits {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[test]
fn binary_rows_split_anywhere() {
    let l = salaries("COPY hr.salaries FROM STDIN (FORMAT binary)");
    let data = binary_stream(&[
        vec![
            Some(3i32.to_be_bytes().to_vec()),
            Some(numeric(0, 0, 2, &[100, 5000])),
            None,
            Some(b"USD".to_vec()),
            Some(8766i32.to_be_bytes().to_vec()),
        ],
        vec![
            Some(4i32.to_be_bytes().to_vec()),
            Some(numeric(1, 0x4000, 1, &[1234, 5678, 9000])),
            Some(numeric(-1, 0, 4, &[12])),
            Some(Vec::new()),
            Some((-1i32).to_be_bytes().to_vec()),
        ],
    ]);
    let c = every_split(&l, &data);
    assert_eq!((c.total, c.malformed, c.hex_values), (2, 0, 0));
    assert_eq!(
        rows(&c),
        vec![
            (json!(["3", "2024-01-01"]), json!(["100.50", null])),
            (json!(["4", "1999-12-31"]), json!(["-12345678.9", "0.0012"])),
        ]
    );
}

#[test]
fn binary_values_of_other_types_are_hex() {
    let table = vec![("id".to_string(), 23), ("at".to_string(), 1184)];
    let l = layout(
        "COPY t FROM STDIN BINARY",
        0,
        &["id".into()],
        &["at".into()],
        &table,
    )
    .unwrap();
    let data = binary_stream(&[vec![
        Some(1i32.to_be_bytes().to_vec()),
        Some(vec![0, 1, 0xab]),
    ]]);
    let c = read(&l, &[&data], 10);
    assert_eq!(rows(&c), vec![(json!(["1"]), json!(["\\x0001ab"]))]);
    assert_eq!(c.hex_values, 1);
}

#[test]
fn malformed_binary_is_counted_never_a_panic() {
    let l = salaries(
        "COPY hr.salaries (employee_id, amount, effective_from) FROM STDIN (FORMAT binary)",
    );
    let good = binary_stream(&[vec![
        Some(1i32.to_be_bytes().to_vec()),
        Some(numeric(0, 0, 0, &[5])),
        Some(0i32.to_be_bytes().to_vec()),
    ]]);
    let c = read(&l, &[&good], 10);
    assert_eq!((c.total, c.malformed), (1, 0));
    assert_eq!(rows(&c), vec![(json!(["1", "2000-01-01"]), json!(["5"]))]);
    // A wrong signature: nothing can be read.
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(read(&l, &[&bad], 10).malformed, 1);
    // Every truncation, and every byte changed, reads without panicking.
    for cut in 0..good.len() {
        let c = read(&l, &[&good[..cut]], 10);
        assert!((c.total <= 1 && c.rows.is_empty()) || cut >= good.len() - 2);
        for v in [0u8, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[cut] = v;
            let _ = read(&l, &[&b], 10);
        }
    }
    // Wrong field count, a length below -1.
    let two = binary_stream(&[vec![None, None]]);
    assert_eq!(read(&l, &[&two], 10).malformed, 1);
    let mut neg = binary_stream(&[vec![None, None, None]]);
    let at = neg.len() - 2 - 4;
    neg[at..at + 4].copy_from_slice(&(-7i32).to_be_bytes());
    assert_eq!(read(&l, &[&neg], 10).malformed, 1);
    // Garbage in text and CSV too.
    for sql in [
        "COPY hr.salaries FROM STDIN",
        "COPY hr.salaries FROM STDIN CSV",
    ] {
        let l = salaries(sql);
        let junk: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
        let _ = read(&l, &[&junk], 10);
    }
}

#[test]
fn decoded_binary_values() {
    use super::decode::show;
    assert_eq!(show(16, &[1]), ("true".into(), true));
    assert_eq!(show(21, &(-5i16).to_be_bytes()), ("-5".into(), true));
    assert_eq!(show(20, &i64::MAX.to_be_bytes()).0, i64::MAX.to_string());
    assert_eq!(show(17, &[0xde, 0xad]), ("\\xdead".into(), true));
    assert_eq!(show(1082, &(-1i32).to_be_bytes()).0, "1999-12-31");
    assert_eq!(show(1082, &(60i32).to_be_bytes()).0, "2000-03-01");
    assert_eq!(show(1700, &numeric(0, 0, 0, &[])).0, "0");
    assert_eq!(show(1700, &numeric(2, 0, 0, &[1, 0, 0])).0, "100000000");
    assert_eq!(show(1700, &numeric(0, 0xC000, 0, &[])).0, "NaN");
    // Too short, a digit out of range, a wrong length: hex.
    assert!(!show(23, &[1, 2]).1);
    assert!(!show(1700, &numeric(0, 0, 0, &[10_000])).1);
    assert!(!show(1700, &[0, 1, 0, 0]).1);
    assert!(!show(25, &[0xff]).1);
}

#[test]
fn layouts_follow_the_statement() {
    let l = salaries(
        "COPY hr.salaries (amount, employee_id) FROM STDIN WITH CSV HEADER DELIMITER '|' NULL 'x'",
    );
    assert_eq!(l.format, Format::Csv);
    assert_eq!(
        (l.delimiter, l.header, &l.null[..]),
        (b'|', true, &b"x"[..])
    );
    assert_eq!(l.fields, 2);
    assert_eq!(l.key, vec![Some(1), None]);
    // bonus is not sent: not captured by this statement, so the plan
    // would not ask for it.
    let table: Vec<(String, u32)> = SALARIES.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    let bonus = layout(
        "COPY hr.salaries (amount, employee_id) FROM STDIN",
        0,
        &["employee_id".into()],
        &["bonus".into()],
        &table,
    );
    assert!(matches!(bonus, Err(CaptureError::Copy(_))));
    for sql in [
        "COPY hr.salaries FROM '/tmp/x'",
        "COPY hr.salaries FROM PROGRAM 'cat'",
        "COPY hr.salaries FROM STDIN WHERE amount > 0",
        "COPY hr.salaries FROM STDIN (FORMAT csv, FORCE_NULL (amount))",
        "COPY hr.salaries FROM STDIN (DELIMITER '||')",
        "COPY hr.salaries TO STDOUT",
    ] {
        let table: Vec<(String, u32)> = SALARIES.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        let r = layout(sql, 0, &[], &["amount".into()], &table);
        assert!(matches!(r, Err(CaptureError::Copy(_))), "{sql}: {r:?}");
    }
}

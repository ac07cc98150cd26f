//! Masked cells per second that `rewrite_data_row` sustains on one core.
//!
//! Rows are an HR result of 13 columns (ids, names, e-mail, phone, dates,
//! salary, ...) of which 3 are masked: `partial:4` on the SSN (text),
//! `bucket:5000` on the salary (numeric) and `year` on the birth date (date);
//! the other 10 cells are copied. One group per result format (text, binary).
//! The throughput counts masked cells only; goal: at least 5 million per second.
//!
//! `cargo bench --bench masking`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgwarden::mask::{oid, rewrite_data_row, CellMask, HashKey, MaskMethod};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const ROWS: usize = 1_000;
const MASKED_PER_ROW: usize = 3;

/// A cell in both encodings: (type OID, text bytes, binary bytes).
type Cell = (u32, Vec<u8>, Vec<u8>);

fn text(oid: u32, s: String) -> Cell {
    (oid, s.clone().into_bytes(), s.into_bytes())
}

/// PostgreSQL's binary numeric for `cents / 100` (non-negative, dscale 2).
fn numeric_binary(cents: u64) -> Vec<u8> {
    let mut groups = Vec::new();
    // Fraction group: two decimals padded to four digits.
    groups.push((cents % 100 * 100) as u16);
    let mut int = cents / 100;
    while int > 0 {
        groups.push((int % 10_000) as u16);
        int /= 10_000;
    }
    groups.reverse();
    let weight = groups.len() as i16 - 2;
    let mut v = Vec::new();
    v.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&2u16.to_be_bytes());
    for g in groups {
        v.extend_from_slice(&g.to_be_bytes());
    }
    v
}

/// Employee `i`'s 13 cells. Columns 4 (ssn), 6 (birth date), 8 (salary) are masked.
fn employee(i: usize) -> Vec<Cell> {
    let first = ["Ada", "Grace", "Linus", "Zoë", "Edsger", "Barbara"][i % 6];
    let last = [
        "Lovelace", "Hopper", "Torvalds", "Müller", "Dijkstra", "Liskov",
    ][i % 6];
    let days = -5407 + (i as i32 * 37) % 9000; // birth dates around 1970-1995
    let (y, m, d) = (1985 + (i % 10), 1 + i % 12, 1 + i % 28);
    let cents = 3_000_000 + (i as u64 * 7_919) % 12_000_000;
    let hired_us = (i64::from(days) + 9000) * 86_400_000_000 + 32_400_000_000;
    vec![
        (
            oid::INT4,
            i.to_string().into_bytes(),
            (i as i32).to_be_bytes().to_vec(),
        ),
        text(oid::TEXT, first.to_owned()),
        text(oid::TEXT, last.to_owned()),
        text(
            oid::VARCHAR,
            format!(
                "{}.{}{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            ),
        ),
        text(
            oid::TEXT,
            format!(
                "{:03}-{:02}-{:04}",
                100 + i % 800,
                10 + i % 90,
                1000 + i % 9000
            ),
        ),
        text(oid::VARCHAR, format!("+1 555 {:07}", i * 13 % 10_000_000)),
        (
            oid::DATE,
            format!("{y:04}-{m:02}-{d:02}").into_bytes(),
            days.to_be_bytes().to_vec(),
        ),
        text(oid::BPCHAR, "EUR".to_owned()),
        (
            oid::NUMERIC,
            format!("{}.{:02}", cents / 100, cents % 100).into_bytes(),
            numeric_binary(cents),
        ),
        (
            oid::INT4,
            (i % 40).to_string().into_bytes(),
            ((i % 40) as i32).to_be_bytes().to_vec(),
        ),
        text(
            oid::TEXT,
            ["Engineering", "Sales", "Finance", "Legal"][i % 4].to_owned(),
        ),
        (
            oid::BOOL,
            (if i % 3 == 0 { "t" } else { "f" }).into(),
            vec![u8::from(i % 3 == 0)],
        ),
        (
            oid::TIMESTAMP,
            format!("20{:02}-0{}-1{} 09:00:00", 10 + i % 15, 1 + i % 9, i % 10).into_bytes(),
            hired_us.to_be_bytes().to_vec(),
        ),
    ]
}

/// DataRow bodies of `ROWS` employees in one format, and the masking plan.
fn workload(binary: bool) -> (Vec<Vec<u8>>, Vec<Option<CellMask>>) {
    let rows = (0..ROWS)
        .map(|i| {
            let cells = employee(i);
            let mut body = (cells.len() as i16).to_be_bytes().to_vec();
            for (_, t, b) in &cells {
                let v = if binary { b } else { t };
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            body
        })
        .collect();
    let methods = [(4, "partial:4"), (6, "year"), (8, "bucket:5000")];
    let plan = employee(0)
        .iter()
        .enumerate()
        .map(|(col, (type_oid, _, _))| {
            let (_, m) = methods.iter().find(|(c, _)| *c == col)?;
            Some(CellMask {
                method: Arc::new(MaskMethod::parse(m).ok()?),
                type_oid: *type_oid,
                binary,
            })
        })
        .collect();
    (rows, plan)
}

fn bench(c: &mut Criterion) {
    let key = HashKey::new(b"bench key");
    let mut g = c.benchmark_group("masking");
    g.throughput(Throughput::Elements((ROWS * MASKED_PER_ROW) as u64));
    g.measurement_time(Duration::from_secs(4));
    for (name, binary) in [("text_rows", false), ("binary_rows", true)] {
        let (rows, plan) = workload(binary);
        assert_eq!(plan.iter().flatten().count(), MASKED_PER_ROW);
        let mut out = BytesMut::with_capacity(rows.iter().map(|r| r.len() + 64).sum());
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for row in &rows {
                    rewrite_data_row(black_box(row), &plan, &key, &mut out).expect("valid row");
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

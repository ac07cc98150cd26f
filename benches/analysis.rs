//! Cost of statement analysis for typical pgbench and HR-demo statements:
//! the cached path (lexer cache key + moka lookup), the uncached analysis
//! (pg_query parse + walk), the lexer alone, and a cold `analyse_here`
//! (lookup miss, analysis, insert). Goals: median under 1 µs cached and
//! under 30 µs uncached. See benches/README.md.
//!
//! Run: `cargo bench --bench analysis` (about 2 minutes).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use pgwarden::analyse::{analyse_text, lexer, Analyser, SessionView};
use pgwarden::catalog::{Catalog, Column, Function, RelKind, Relation};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Goal for a cache hit, in nanoseconds.
const GOAL_CACHED_NS: f64 = 1_000.0;
/// Goal for an analysis without the cache, in nanoseconds.
const GOAL_UNCACHED_NS: f64 = 30_000.0;
/// Literal variants per statement: enough that the cached path sees
/// different literals (and so different text to scan and hash) every time,
/// as simple-protocol traffic does, without the texts leaving the CPU cache.
const VARIANTS: usize = 1_000;
/// The parser and walker recurse per nesting level, so analysis must run on
/// a thread with a stack as large as pgwarden's parser threads (64 MiB).
const STACK: usize = 64 << 20;
/// The capacity pgwarden's server uses (src/context.rs).
const CACHE_CAPACITY: u64 = 50_000;
/// Criterion samples per bench: 40 benches at 2 s each keep the run near
/// two minutes, and 30 samples give a median stable to a few percent.
const SAMPLES: usize = 30;

// ---------------------------------------------------------------- catalog

/// pg_type oids of the column types used below.
const INT4: u32 = 23;
const INT2: u32 = 21;
const TEXT: u32 = 25;
const BPCHAR: u32 = 1042;
const DATE: u32 = 1082;
const NUMERIC: u32 = 1700;
const TIMESTAMP: u32 = 1114;

fn rel(
    oid: u32,
    schema: &str,
    name: &str,
    kind: RelKind,
    cols: &[(&str, u32, &str)],
    view: Option<&str>,
) -> Relation {
    Relation {
        oid,
        schema: schema.into(),
        name: name.into(),
        kind,
        columns: cols
            .iter()
            .zip(1..)
            .map(|(&(name, type_oid, type_name), attnum)| Column {
                name: name.into(),
                attnum,
                type_oid,
                type_name: type_name.into(),
            })
            .collect(),
        view_definition: view.map(str::to_owned),
        primary_key: Vec::new(),
        row_security: false,
    }
}

/// The HR demo schema (deploy/demo/schema.sql) and pgbench's tables, as the
/// catalog loader would build them, plus the common built-in functions.
fn catalog() -> Catalog {
    let mut c = Catalog {
        version: 1,
        ..Default::default()
    };
    for (s, oid) in [("pg_catalog", 11), ("public", 2200), ("hr", 16_384)] {
        c.schemas.insert(s.into(), oid);
    }
    let t = RelKind::Table;
    let int = |n| (n, INT4, "integer");
    let text = |n| (n, TEXT, "text");
    let date = |n| (n, DATE, "date");
    let money = |n| (n, NUMERIC, "numeric(12,2)");
    c.insert_relation(rel(
        16_385,
        "hr",
        "departments",
        t,
        &[int("id"), text("name"), text("cost_center")],
        None,
    ));
    c.insert_relation(rel(
        16_386,
        "hr",
        "employees",
        t,
        &[
            int("id"),
            text("first_name"),
            text("last_name"),
            text("email"),
            text("phone"),
            int("department_id"),
            int("manager_id"),
            text("job_title"),
            date("hire_date"),
            date("date_of_birth"),
            ("ssn", BPCHAR, "character(11)"),
            text("home_address"),
            text("bank_account"),
        ],
        None,
    ));
    c.insert_relation(rel(
        16_387,
        "hr",
        "salaries",
        t,
        &[
            int("employee_id"),
            money("amount"),
            money("bonus"),
            ("currency", BPCHAR, "character(3)"),
            date("effective_from"),
        ],
        None,
    ));
    c.insert_relation(rel(
        16_388,
        "hr",
        "performance_reviews",
        t,
        &[
            int("id"),
            int("employee_id"),
            int("reviewer_id"),
            text("period"),
            ("rating", INT2, "smallint"),
            text("comments"),
        ],
        None,
    ));
    c.insert_relation(rel(
        16_389,
        "hr",
        "health_records",
        t,
        &[
            int("id"),
            int("employee_id"),
            text("condition"),
            text("accommodation"),
            text("notes"),
        ],
        None,
    ));
    // The definition exactly as pg_get_viewdef returns it.
    c.insert_relation(rel(
        16_390,
        "hr",
        "employee_directory",
        RelKind::View,
        &[
            int("id"),
            text("first_name"),
            text("last_name"),
            text("email"),
            text("phone"),
            text("department"),
            text("job_title"),
        ],
        Some(
            " SELECT e.id,\n    e.first_name,\n    e.last_name,\n    e.email,\n    e.phone,\n    \
             d.name AS department,\n    e.job_title\n   \
             FROM (hr.employees e\n     JOIN hr.departments d ON ((d.id = e.department_id)));",
        ),
    ));
    let filler = |n| (n, BPCHAR, "character(84)");
    c.insert_relation(rel(
        16_400,
        "public",
        "pgbench_accounts",
        t,
        &[int("aid"), int("bid"), int("abalance"), filler("filler")],
        None,
    ));
    c.insert_relation(rel(
        16_401,
        "public",
        "pgbench_branches",
        t,
        &[int("bid"), int("bbalance"), filler("filler")],
        None,
    ));
    c.insert_relation(rel(
        16_402,
        "public",
        "pgbench_tellers",
        t,
        &[int("tid"), int("bid"), int("tbalance"), filler("filler")],
        None,
    ));
    c.insert_relation(rel(
        16_403,
        "public",
        "pgbench_history",
        t,
        &[
            int("tid"),
            int("bid"),
            int("aid"),
            int("delta"),
            ("mtime", TIMESTAMP, "timestamp without time zone"),
            ("filler", BPCHAR, "character(22)"),
        ],
        None,
    ));
    for (i, name) in [
        "count",
        "sum",
        "max",
        "min",
        "avg",
        "upper",
        "lower",
        "length",
        "coalesce",
        "now",
        "row_number",
        "rank",
        "date_part",
        "string_agg",
        "round",
        "generate_series",
        "unnest",
    ]
    .into_iter()
    .enumerate()
    {
        c.insert_function(Function {
            oid: 2_000 + i as u32,
            schema: "pg_catalog".into(),
            name: name.into(),
            language: "internal".into(),
            security_definer: false,
            returns_set: matches!(name, "generate_series" | "unnest"),
        });
    }
    c
}

/// A session as pgbench's (user postgres, default search path) or a demo
/// application's sees it: `"$user", public` already expanded.
fn session_view() -> SessionView {
    SessionView {
        search_path: vec!["postgres".into(), "public".into()],
        temp_relations: Vec::new(),
        created: Vec::new(),
        default_search_path: vec!["postgres".into(), "public".into()],
        standard_conforming_strings: true,
    }
}

// ---------------------------------------------------------------- statements

/// A small deterministic generator (splitmix64) so runs see the same texts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// One statement shape; `text` renders it with fresh literal values.
struct Statement {
    name: &'static str,
    text: fn(&mut Rng) -> String,
}

const SURNAMES: [&str; 6] = [
    "Smith", "O''Brien", "García", "Nguyen", "Müller", "Kowalski",
];

fn statements() -> Vec<Statement> {
    vec![
        // pgbench -S (select-only), and the tpcb-like script's statements
        // as `-M simple` substitutes them: the delta's sign varies, so
        // `+ -4432` and `+ 4432` are two token streams and two cache entries.
        Statement {
            name: "pgbench_select",
            text: |r| {
                format!(
                    "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
                    r.range(1, 1_000_000)
                )
            },
        },
        Statement {
            name: "pgbench_update",
            text: |r| {
                format!(
                    "UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = {};",
                    r.range(-5_000, 5_000),
                    r.range(1, 1_000_000)
                )
            },
        },
        Statement {
            name: "pgbench_insert",
            text: |r| {
                format!(
                    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
                     VALUES ({}, {}, {}, {}, CURRENT_TIMESTAMP);",
                    r.range(1, 100),
                    r.range(1, 10),
                    r.range(1, 1_000_000),
                    r.range(-5_000, 5_000)
                )
            },
        },
        Statement {
            name: "hr_join",
            text: |r| {
                format!(
                    "SELECT e.first_name, e.last_name, e.email, s.amount, s.currency \
                     FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id \
                     WHERE e.department_id = {} AND s.amount > {} \
                     ORDER BY s.amount DESC, e.last_name LIMIT {}",
                    r.range(1, 12),
                    r.range(30, 150) * 1_000,
                    r.range(10, 50)
                )
            },
        },
        Statement {
            name: "hr_view",
            text: |r| {
                format!(
                    "SELECT first_name, last_name, email, department \
                     FROM hr.employee_directory WHERE last_name = '{}' ORDER BY first_name",
                    SURNAMES[r.range(0, SURNAMES.len() as i64 - 1) as usize]
                )
            },
        },
        Statement {
            name: "hr_cte",
            text: |r| {
                format!(
                    "WITH latest AS (\
                       SELECT employee_id, max(effective_from) AS since, max(amount) AS amount \
                       FROM hr.salaries GROUP BY employee_id) \
                     SELECT d.name, count(*) AS people, sum(l.amount) AS payroll \
                     FROM latest l JOIN hr.employees e ON e.id = l.employee_id \
                     JOIN hr.departments d ON d.id = e.department_id \
                     WHERE l.since >= DATE '2024-01-{:02}' \
                     GROUP BY d.name ORDER BY payroll DESC LIMIT {}",
                    r.range(1, 28),
                    r.range(5, 20)
                )
            },
        },
        Statement {
            name: "hr_update_salary",
            text: |r| {
                format!(
                    "UPDATE hr.salaries SET amount = amount * 1.{:02}, bonus = {} \
                     WHERE employee_id = {} AND effective_from = '2024-0{}-01'",
                    r.range(1, 15),
                    r.range(0, 5_000),
                    r.range(1, 500),
                    r.range(1, 9)
                )
            },
        },
        Statement {
            name: "hr_select_star",
            text: |r| format!("SELECT * FROM hr.employees WHERE id = {}", r.range(1, 500)),
        },
    ]
}

/// `sql` with the case of its letters outside quotes flipped by the bits of
/// `n`: the same statement to PostgreSQL (unquoted names fold to lower
/// case), but a different token stream and so a different cache key. Gives
/// the cold-path group a never-seen statement every iteration.
fn case_variant(sql: &str, mut n: u64) -> String {
    let mut quote = None;
    sql.chars()
        .map(|c| match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                c
            }
            (Some(q), _) if c == q => {
                quote = None;
                c
            }
            (None, _) if c.is_ascii_alphabetic() => {
                let flip = n & 1 == 1;
                n >>= 1;
                if flip {
                    (c as u8 ^ 0x20) as char
                } else {
                    c
                }
            }
            _ => c,
        })
        .collect()
}

// ---------------------------------------------------------------- harness

/// Per-iteration times (ns) of each sample, by (group, statement), recorded
/// from `iter_custom` so the summary reports the same median as criterion.
type Samples = RefCell<BTreeMap<(&'static str, &'static str), Vec<f64>>>;

/// Benches `f` over `texts`, cycling through them; only the calls are timed.
fn bench_cycle(
    g: &mut BenchmarkGroup<'_, WallTime>,
    samples: &Samples,
    group: &'static str,
    name: &'static str,
    texts: &[String],
    mut f: impl FnMut(&str),
) {
    let mut next = 0usize;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                f(&texts[next]);
                next = (next + 1) % texts.len();
            }
            let elapsed = start.elapsed();
            record(samples, group, name, iters, elapsed);
            elapsed
        })
    });
}

fn record(samples: &Samples, group: &'static str, name: &'static str, iters: u64, t: Duration) {
    samples
        .borrow_mut()
        .entry((group, name))
        .or_default()
        .push(t.as_nanos() as f64 / iters.max(1) as f64);
}

fn run(c: &mut Criterion, samples: &Samples) {
    let catalog = catalog();
    let view = session_view();
    let statements = statements();
    let mut rng = Rng(0x7067_7761_7264_656e);
    let variants: Vec<Vec<String>> = statements
        .iter()
        .map(|s| (0..VARIANTS).map(|_| (s.text)(&mut rng)).collect())
        .collect();

    // A bench of something the analyser gets wrong would measure an error
    // path, so check every statement resolves and is cacheable first.
    let warm = Analyser::new(CACHE_CAPACITY);
    for (s, texts) in statements.iter().zip(&variants) {
        for t in texts {
            let a = warm.analyse_here(t, &view, &catalog);
            assert_eq!(a.len(), 1, "{}: one statement", s.name);
            assert_eq!(a[0].unanalysed, None, "{}: {t}", s.name);
            assert!(!a[0].accesses.is_empty(), "{}: no relation found", s.name);
            assert!(
                warm.cached(t, &view, catalog.version).is_some(),
                "{}: not cached",
                s.name
            );
        }
    }

    let mut g = c.benchmark_group("cached");
    for (s, texts) in statements.iter().zip(&variants) {
        bench_cycle(&mut g, samples, "cached", s.name, texts, |t| {
            black_box(warm.cached(black_box(t), &view, catalog.version));
        });
    }
    g.finish();

    // What sessions actually call (src/session/observe.rs): the view's hash
    // is kept per session, so only the lexer and the lookup remain.
    let view_key = view.key();
    let mut g = c.benchmark_group("cached_with_key");
    for (s, texts) in statements.iter().zip(&variants) {
        bench_cycle(&mut g, samples, "cached_with_key", s.name, texts, |t| {
            black_box(warm.cached_with_key(black_box(t), view_key, true, catalog.version));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("lexer");
    let keys = lexer::HashKeys::random();
    for (s, texts) in statements.iter().zip(&variants) {
        bench_cycle(&mut g, samples, "lexer", s.name, texts, |t| {
            black_box(lexer::scan(black_box(t), true, keys).ok());
        });
    }
    g.finish();

    let mut g = c.benchmark_group("uncached");
    for (s, texts) in statements.iter().zip(&variants) {
        bench_cycle(&mut g, samples, "uncached", s.name, texts, |t| {
            black_box(analyse_text(black_box(t), &view, &catalog));
        });
    }
    g.finish();

    // Lookup miss + analysis + insert, on a cache already as full as
    // pgwarden's would be in steady state. Texts are built per sample,
    // outside the timed loop; the counter keeps every one unique.
    let cold = Analyser::new(CACHE_CAPACITY);
    let mut g = c.benchmark_group("cold_analyse_here");
    let mut counter = 1u64;
    for (s, texts) in statements.iter().zip(&variants) {
        g.bench_function(s.name, |b| {
            b.iter_custom(|iters| {
                let batch: Vec<String> = (0..iters)
                    .map(|i| {
                        counter += 1;
                        case_variant(&texts[i as usize % texts.len()], counter)
                    })
                    .collect();
                let start = Instant::now();
                for t in &batch {
                    black_box(cold.analyse_here(black_box(t), &view, &catalog));
                }
                let elapsed = start.elapsed();
                record(samples, "cold_analyse_here", s.name, iters, elapsed);
                elapsed
            })
        });
    }
    g.finish();

    let names: Vec<&str> = statements.iter().map(|s| s.name).collect();
    let firsts: Vec<&str> = variants.iter().map(|v| v[0].as_str()).collect();
    // A profiling run (`-- --profile-time N filter`) should contain only the
    // bench being profiled.
    if !std::env::args().any(|a| a == "--profile-time") {
        profile_parts(&catalog, &view, &names, &firsts);
    }
}

/// Where the time goes, per statement: the pieces `analyse_text` and
/// `Analyser::cached` are made of, each timed on its own (median ns per
/// call). "walk+rest" is what remains of `analyse_text` once the parse, the
/// lexer's depth check, the normalization and the fingerprint's scan are
/// taken out: the walker, name resolution and building the result.
fn profile_parts(catalog: &Catalog, view: &SessionView, names: &[&str], texts: &[&str]) {
    let keys = lexer::HashKeys::random();
    let analyser = Analyser::new(CACHE_CAPACITY);
    let time = |f: &dyn Fn()| fastest_batch(f);
    println!(
        "\nWhere the time goes (ns per call, fastest 1 ms batch, one text per statement; \
         C proto and PR::new by difference):"
    );
    println!(
        "{:<18}{:>8}{:>7}{:>7}{:>9}{:>9}{:>8}{:>8}{:>8}{:>8}{:>8}{:>7}{:>10}",
        "statement",
        "viewkey",
        "scan",
        "hit",
        "uncached",
        "pg_query",
        "ours",
        "C parse",
        "C proto",
        "decode",
        "PR::new",
        "normal",
        "walk+rest"
    );
    for (name, sql) in names.iter().zip(texts) {
        analyser.analyse_here(sql, view, catalog);
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).expect("parses");
        let bytes = prost::Message::encode_to_vec(&parsed.protobuf);
        let view_key = time(&|| {
            black_box(black_box(view).key());
        });
        let scan = time(&|| {
            black_box(lexer::scan(black_box(sql), true, keys).ok());
        });
        let hit = time(&|| {
            black_box(analyser.cached(black_box(sql), view, catalog.version));
        });
        let uncached = time(&|| {
            black_box(analyse_text(black_box(sql), view, catalog));
        });
        let parse = time(&|| {
            black_box(pg_query::parse(black_box(sql), pg_query::ParserOptions::DEFAULT).ok());
        });
        // pgwarden's own entry into the same parser (no stderr capture, no
        // ParseResult::new), what analyse_text uses.
        let ours = time(&|| {
            black_box(pgwarden::analyse::parse::parse(black_box(sql), true).ok());
        });
        // The Rust half of pg_query::parse: decoding the C library's
        // protobuf, and the node list ParseResult::new builds for its
        // tables()/functions() helpers, which pgwarden does not use.
        let decode = time(&|| {
            black_box(
                <pg_query::protobuf::ParseResult as prost::Message>::decode(black_box(&bytes[..]))
                    .ok(),
            );
        });
        let decode_and_new = time(&|| {
            black_box(
                <pg_query::protobuf::ParseResult as prost::Message>::decode(black_box(&bytes[..]))
                    .map(|p| pg_query::ParseResult::new(p, String::new()))
                    .ok(),
            );
        });
        // libpg_query's raw parser alone, without its protobuf output.
        let raw = time(&|| {
            black_box(pg_query::split_with_parser(black_box(sql)).ok());
        });
        let normalize = time(&|| {
            black_box(lexer::normalize(black_box(sql), true).ok());
        });
        let rest = uncached - ours - 2.0 * scan - normalize;
        let pr_new = decode_and_new - decode;
        let c_proto = parse - raw - decode_and_new;
        println!(
            "{name:<18}{view_key:>8.0}{scan:>7.0}{hit:>7.0}{uncached:>9.0}{parse:>9.0}{ours:>8.0}{raw:>8.0}\
             {c_proto:>8.0}{decode:>8.0}{pr_new:>8.0}{normalize:>7.0}{rest:>10.0}"
        );
    }
    if let Some(def) = catalog
        .relation_in("hr", "employee_directory")
        .and_then(|r| r.view_definition.as_deref())
    {
        // The walker parses a view's stored definition at every use.
        let t = time(&|| {
            black_box(pg_query::parse(black_box(def), pg_query::ParserOptions::DEFAULT).ok());
        });
        println!("pg_query::parse of hr.employee_directory's definition: {t:.0} ns");
    }
    // What the server adds per uncached statement on top of the analysis:
    // handing it to a parser thread and waiting for the answer.
    let hop = time(&|| {
        black_box(pgwarden::analyse::parse::on_parser_thread_blocking(|| black_box(1)).ok());
    });
    println!("parser thread round trip (empty job, blocking caller): {hop:.0} ns");
}

/// The fastest of 60 batches (~1 ms each) of the mean time per call, after
/// a warm-up. The breakdown subtracts parts from each other, so it needs the
/// figure least disturbed by other load on the machine, not the typical one.
fn fastest_batch(f: &dyn Fn()) -> f64 {
    let start = Instant::now();
    let (mut calls, mut per_round) = (0u64, 1u64);
    while start.elapsed() < Duration::from_millis(100) {
        for _ in 0..per_round {
            f();
        }
        calls += per_round;
        per_round *= 2;
    }
    // Batches of ~1 ms: long enough to hide the clock's cost.
    let per_call = start.elapsed().as_nanos() as u64 / calls;
    let n = (1_000_000 / per_call.max(1)).clamp(1, 100_000);
    (0..60)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..n {
                f();
            }
            s.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The summary table: criterion's samples (the last `sample_size` calls of
/// each bench; the earlier ones are its warm-up) reduced to the median.
fn summary(samples: &Samples, sample_size: usize) {
    let samples = samples.borrow();
    if samples.is_empty() {
        return;
    }
    let groups = [
        ("cached", Some(GOAL_CACHED_NS)),
        ("cached_with_key", Some(GOAL_CACHED_NS)),
        ("lexer", None),
        ("uncached", Some(GOAL_UNCACHED_NS)),
        ("cold_analyse_here", Some(GOAL_UNCACHED_NS)),
    ];
    println!("\nMedian per statement (goals: cached < 1 µs, uncached < 30 µs):");
    print!("{:<18}", "statement");
    for (g, _) in groups {
        print!("{g:>20}");
    }
    println!();
    let names: Vec<&str> = statements().iter().map(|s| s.name).collect();
    let (mut met, mut missed) = (0, 0);
    for name in names {
        if !groups
            .iter()
            .any(|(g, _)| samples.contains_key(&(*g, name)))
        {
            continue;
        }
        print!("{name:<18}");
        for (g, goal) in groups {
            let Some(v) = samples.get(&(g, name)) else {
                print!("{:>20}", "-");
                continue;
            };
            let mut last = v[v.len().saturating_sub(sample_size)..].to_vec();
            let m = median(&mut last);
            let verdict = match goal {
                Some(goal) if m < goal => {
                    met += 1;
                    " ok"
                }
                Some(_) => {
                    missed += 1;
                    " MISS"
                }
                None => "",
            };
            print!("{:>20}", format!("{}{verdict}", fmt_ns(m)));
        }
        println!();
    }
    println!("Goals met: {met}, missed: {missed}.");
}

fn main() {
    let spawned = std::thread::Builder::new()
        .name("bench".into())
        .stack_size(STACK)
        .spawn(|| {
            let mut c = Criterion::default()
                .sample_size(SAMPLES)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_millis(1_500))
                .nresamples(10_000)
                .configure_from_args();
            let samples = Samples::default();
            run(&mut c, &samples);
            c.final_summary();
            summary(&samples, SAMPLES);
        })
        .expect("bench thread");
    spawned.join().expect("bench panicked");
}

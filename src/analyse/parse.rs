//! Running PostgreSQL's parser (pg_query) safely: on threads with a large
//! stack, after the scanner's depth check, so deeply nested input is an
//! error and never a crash.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use thiserror::Error;

/// Stack of each parser thread: the C parser, protobuf decoding and the
/// walker all recurse once per nesting level.
const PARSER_STACK: usize = 64 * 1024 * 1024;
/// Deepest parenthesis nesting accepted.
pub const MAX_PAREN_DEPTH: u32 = 256;
/// Most operator and punctuation tokens accepted in one text (bounds the
/// depth of operator chains such as `a + b + c ...`).
pub const MAX_SYMBOLS: u32 = 200_000;

/// Why a statement could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// PostgreSQL's grammar rejects it.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Nested deeper than pgwarden analyses.
    #[error("statement nested too deeply ({0} levels)")]
    TooDeep(u32),
    /// The parser thread is gone.
    #[error("parser unavailable")]
    Unavailable,
}

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static Mutex<mpsc::Sender<Job>> {
    static POOL: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pgwarden-parse-{i}"))
                .stack_size(PARSER_STACK)
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a parser thread");
            }
        }
        Mutex::new(tx)
    })
}

fn submit(job: Job) -> Result<(), ParseError> {
    pool()
        .lock()
        .map_err(|_| ParseError::Unavailable)?
        .send(job)
        .map_err(|_| ParseError::Unavailable)
}

/// Runs `f` on a parser thread and waits for its result.
pub async fn on_parser_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ParseError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(Box::new(move || {
        let _ = tx.send(f());
    }))?;
    rx.await.map_err(|_| ParseError::Unavailable)
}

/// Runs `f` on a parser thread, blocking the caller (for tools and tests).
pub fn on_parser_thread_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ParseError> {
    let (tx, rx) = mpsc::channel();
    submit(Box::new(move || {
        let _ = tx.send(f());
    }))?;
    rx.recv().map_err(|_| ParseError::Unavailable)
}

/// A parse result as `parser.c` hands it over: a protobuf ParseResult, or
/// an error message. Layout shared with `PgwardenParse` in parser.c.
#[repr(C)]
struct RawParse {
    tree_len: usize,
    tree_data: *mut c_char,
    message: *mut c_char,
    cursorpos: c_int,
}

extern "C" {
    fn pgwarden_parse(input: *const c_char, standard_conforming: bool) -> RawParse;
    #[cfg(test)]
    fn pgwarden_parse_reference(input: *const c_char, standard_conforming: bool) -> RawParse;
    fn pgwarden_parse_free(result: RawParse);
    #[cfg(test)]
    fn pgwarden_fast_encodes() -> std::ffi::c_ulong;
}

/// Parses `sql` (which may hold several statements). Call on a parser thread.
pub fn parse(
    sql: &str,
    standard_conforming_strings: bool,
) -> Result<pg_query::protobuf::ParseResult, ParseError> {
    parse_through(pgwarden_parse, sql, standard_conforming_strings)
}

/// [`parse`] with upb's own protobuf encoder instead of pgwarden's: the
/// reference its output is checked against.
#[cfg(test)]
fn parse_reference(
    sql: &str,
    standard_conforming_strings: bool,
) -> Result<pg_query::protobuf::ParseResult, ParseError> {
    parse_through(pgwarden_parse_reference, sql, standard_conforming_strings)
}

fn parse_through(
    entry: unsafe extern "C" fn(*const c_char, bool) -> RawParse,
    sql: &str,
    standard_conforming_strings: bool,
) -> Result<pg_query::protobuf::ParseResult, ParseError> {
    // PostgreSQL reads a statement up to its first zero byte; the protocol
    // cannot carry one inside a string anyway.
    let input = CString::new(sql)
        .map_err(|_| ParseError::Syntax("statement contains a zero byte".into()))?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the
    // call; libpg_query catches every PostgreSQL error it raises.
    let raw = unsafe { entry(input.as_ptr(), standard_conforming_strings) };
    let result = if !raw.message.is_null() {
        // SAFETY: a non-null message is a NUL-terminated string from strdup.
        let message = unsafe { CStr::from_ptr(raw.message) }.to_string_lossy();
        Err(ParseError::Syntax(match raw.cursorpos {
            p if p > 0 => format!("{message} (character {p})"),
            _ => message.into_owned(),
        }))
    } else {
        let bytes: &[u8] = if raw.tree_data.is_null() {
            &[]
        } else {
            // SAFETY: parser.c hands over `tree_len` bytes it malloc'ed.
            unsafe { std::slice::from_raw_parts(raw.tree_data.cast::<u8>(), raw.tree_len) }
        };
        <pg_query::protobuf::ParseResult as prost::Message>::decode(bytes)
            .map_err(|e| ParseError::Syntax(format!("unreadable parse tree: {e}")))
    };
    // SAFETY: `raw` came from pgwarden_parse and is freed exactly once.
    unsafe { pgwarden_parse_free(raw) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENTS: &[&str] = &[
        "SELECT 1",
        "SELECT e.first_name, s.amount FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id WHERE e.id = $1 ORDER BY 2 DESC",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
        "UPDATE hr.salaries SET amount = amount * 1.05 WHERE employee_id IN (SELECT id FROM hr.employees) RETURNING *",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
        "COPY hr.employees (id, email) TO STDOUT WITH (FORMAT csv); BEGIN; SET search_path = hr, public; COMMIT",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        "SELECT U&\"d\\0061t\\+000061\" FROM \"Weird \"\"Name\"\"\" /* comment */ -- tail",
        "",
    ];

    /// `sql` parsed by pgwarden's encoder and by upb's: the same outcome.
    fn assert_same_as_reference(sql: &str, scs: bool) {
        let ours = parse(sql, scs);
        assert_eq!(ours, parse_reference(sql, scs), "{sql}");
        if let Ok(tree) = ours {
            // Decoded again from pgwarden's bytes: nothing lost on the way.
            let bytes = prost::Message::encode_to_vec(&tree);
            let again = <pg_query::protobuf::ParseResult as prost::Message>::decode(&bytes[..]);
            assert_eq!(again.as_ref(), Ok(&tree));
        }
    }

    /// The comparisons below mean something only if pgwarden's encoder,
    /// not upb's, wrote `parse`'s bytes.
    #[test]
    fn parse_uses_pgwardens_encoder_and_the_reference_does_not() {
        // SAFETY: reads a thread-local counter.
        let count = || unsafe { pgwarden_fast_encodes() };
        let before = count();
        assert!(parse("SELECT a FROM t WHERE b = 1", true).is_ok());
        assert_eq!(count(), before + 1);
        assert!(parse_reference("SELECT a FROM t WHERE b = 1", true).is_ok());
        assert!(pg_query::parse("SELECT 1", pg_query::ParserOptions::DEFAULT).is_ok());
        assert_eq!(count(), before + 1);
    }

    #[test]
    fn gives_the_tree_pg_query_gives() {
        for sql in STATEMENTS {
            let ours = parse(sql, true).expect("parses");
            let theirs = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
                .expect("pg_query parses")
                .protobuf;
            assert_eq!(ours, theirs, "{sql}");
            assert_same_as_reference(sql, true);
            assert_same_as_reference(sql, false);
        }
    }

    /// Every text of the analysis accuracy corpus (tests/analysis_corpus.txt).
    #[test]
    fn encodes_the_accuracy_corpus_as_upb_does() {
        let corpus = include_str!("../../tests/analysis_corpus.txt");
        let mut texts: Vec<String> = Vec::new();
        for line in corpus.lines() {
            if let Some(sql) = line.strip_prefix("sql: ") {
                texts.push(sql.to_string());
            } else if let (Some(more), Some(last)) = (line.strip_prefix("+ "), texts.last_mut()) {
                last.push('\n');
                last.push_str(more);
            }
        }
        assert!(texts.len() >= 200, "{} texts", texts.len());
        for sql in &texts {
            assert_same_as_reference(sql, true);
        }
    }

    /// Trees deeper than the encoder's stack budget go to upb's encoder;
    /// deeper than the protobuf depth limit, both refuse them alike.
    #[test]
    fn deep_trees_are_encoded_or_refused_as_upb_does() {
        let run = || {
            for terms in [50, 1_500, 3_000, 6_000] {
                let sql = format!("SELECT 1{}", " + x".repeat(terms));
                assert_same_as_reference(&sql, true);
                let nested = format!(
                    "SELECT {}1{}",
                    "(SELECT ".repeat(terms / 10),
                    ")".repeat(terms / 10)
                );
                assert_same_as_reference(&nested, true);
            }
            assert!(parse(&format!("SELECT 1{}", " + x".repeat(6_000)), true).is_err());
        };
        std::thread::Builder::new()
            .stack_size(PARSER_STACK)
            .spawn(run)
            .expect("thread")
            .join()
            .expect("deep trees");
    }

    /// PostgreSQL's regression SQL (`PGWARDEN_SQL_CORPUS=dir`, one statement
    /// per scanner split of each `.sql` file): pgwarden's encoder against
    /// upb's on every statement. Slow; run by hand.
    #[test]
    #[ignore]
    fn encodes_a_sql_corpus_as_upb_does() {
        let dir = std::env::var("PGWARDEN_SQL_CORPUS").expect("PGWARDEN_SQL_CORPUS");
        let run = move || {
            let (mut statements, mut refused) = (0usize, 0usize);
            for entry in std::fs::read_dir(dir).expect("corpus directory") {
                let path = entry.expect("entry").path();
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                for sql in pg_query::split_with_scanner(&text).unwrap_or_default() {
                    assert_same_as_reference(sql, true);
                    statements += 1;
                    refused += usize::from(parse(sql, true).is_err());
                }
            }
            println!("{statements} statements, {refused} refused by the parser, all identical");
            assert!(statements > 0);
        };
        std::thread::Builder::new()
            .stack_size(PARSER_STACK)
            .spawn(run)
            .expect("thread")
            .join()
            .expect("corpus");
    }

    #[test]
    fn errors_carry_postgresql_message_and_position() {
        let cases = [
            ("SELEC 1", "syntax error at or near \"SELEC\" (character 1)"),
            (
                "SELECT 1 FROM",
                "syntax error at end of input (character 14)",
            ),
            (
                "SELECT 'abc",
                "unterminated quoted string at or near \"'abc\" (character 8)",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(
                parse(sql, true),
                Err(ParseError::Syntax(want.into())),
                "{sql}"
            );
            // pg_query's own message is the same text, without the position.
            let theirs = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
                .expect_err("pg_query refuses it too")
                .to_string();
            let message = want.rsplit_once(" (character").map_or(want, |(m, _)| m);
            assert!(theirs.ends_with(message), "{theirs}");
            // The parser's state is restored after the error.
            assert!(parse("SELECT 2", true).is_ok());
        }
        assert_eq!(
            parse("SELECT 1\0", true),
            Err(ParseError::Syntax("statement contains a zero byte".into()))
        );
    }

    #[test]
    fn backslashes_follow_standard_conforming_strings() {
        let sql = r"SELECT 'a\'b'";
        assert!(
            parse(sql, true).is_err(),
            "with the setting on, \\ is a plain character"
        );
        let tree = parse(sql, false).expect("with the setting off, \\' escapes the quote");
        let text = format!("{tree:?}");
        assert!(text.contains("sval: \"a'b\""), "{text}");
        // Off for one parse only: the next one has its own setting.
        assert!(parse(sql, true).is_err());
    }
}

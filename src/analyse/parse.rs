//! Running PostgreSQL's parser (pg_query) safely: on threads with a large
//! stack, after the scanner's depth check, so deeply nested input is an
//! error and never a crash.

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

/// Parses `sql` (which may hold several statements). Call on a parser thread.
pub fn parse(
    sql: &str,
    standard_conforming_strings: bool,
) -> Result<pg_query::protobuf::ParseResult, ParseError> {
    let mut opts = pg_query::ParserOptions::DEFAULT;
    if !standard_conforming_strings {
        opts |= pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS;
    }
    pg_query::parse(sql, opts)
        .map(|r| r.protobuf)
        .map_err(|e| ParseError::Syntax(e.to_string()))
}

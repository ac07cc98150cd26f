//! MERGE capture. PostgreSQL 15 and 16 return no rows from MERGE (no
//! RETURNING, no MERGE in WITH), so in a simple Query pgwarden runs two
//! statements of its own around the client's MERGE, in the same implicit
//! or explicit transaction, and withholds their answers:
//!
//! - a pre-image before it: the target rows the ON condition matches,
//!   `FOR UPDATE`, so no other writer can change them before the MERGE
//!   does (their old values are the ones replaced), with their key, old
//!   values and row version (`tableoid:ctid`). The keys are handed to the
//!   post-image in a transaction-local setting.
//! - a post-image after it: the rows with those keys plus the rows the ON
//!   condition matches now, with new values, row version and whether this
//!   transaction wrote them (`pg_xact_status` of `xmin`: covers
//!   savepoints' subtransactions too).
//!
//! A pre-image row whose version changed was updated, one that is gone was
//! deleted, a new row this transaction wrote was inserted; an unchanged
//! version was left alone (a DO NOTHING or a WHEN condition that failed).
//! The MERGE's own row count checks the sum; a mismatch (a volatile source
//! evaluated differently, an insert the ON condition does not match) is
//! recorded as `incomplete` with the figures.

use super::rewrite::{has_returning, ident, pre_columns, target_ref, Edit, Target, Tokens};
use super::rows::{Action, ChangeRow, Changes};
use super::CaptureError;
use pg_query::protobuf::{self as pb, Token};
use pg_query::NodeEnum;
use serde_json::Value;
use std::collections::HashMap;

/// The transaction-local setting carrying the pre-image to the post-image.
const SETTING: &str = "pgwarden.merge";

/// The statements pgwarden runs before and after a captured MERGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Locks the matched rows and reads their old values.
    pub pre: String,
    /// Reads the new values.
    pub post: String,
}

/// Rewrites the MERGE starting at `start` into pre-image; MERGE; post-image.
pub(super) fn rewrite(
    sql: &str,
    start: usize,
    toks: &Tokens,
    s: &pb::MergeStmt,
    t: &Target,
    edits: &mut Vec<Edit>,
) -> Result<(), CaptureError> {
    let images = images(sql, start, toks, s, t)?;
    edits.push(Edit {
        at: toks.start_after(start),
        text: format!("{}; ", images.pre),
    });
    edits.push(Edit {
        at: toks.end(),
        text: format!("; {}", images.post),
    });
    Ok(())
}

/// The images of the MERGE starting at `start`. They repeat its WITH list,
/// source and ON condition, so a parameter must appear only there: the
/// images then infer the same types the MERGE does.
pub(super) fn images(
    sql: &str,
    start: usize,
    toks: &Tokens,
    s: &pb::MergeStmt,
    t: &Target,
) -> Result<Images, CaptureError> {
    check(s, t)?;
    let rel = s.relation.as_ref().ok_or(CaptureError::Position)?;
    let r = target_ref(rel);
    let first = toks.start_after(start);
    let merge_kw = toks
        .first(Token::Merge, first)
        .ok_or(CaptureError::Position)?;
    let into = toks
        .first(Token::Into, merge_kw.1)
        .ok_or(CaptureError::Position)?;
    let using = toks
        .first(Token::Using, into.1)
        .ok_or(CaptureError::Position)?;
    let on = toks
        .first(Token::On, using.1)
        .ok_or(CaptureError::Position)?;
    let when = toks
        .first_when_outside_case(on.1)
        .ok_or(CaptureError::Position)?;
    let piece = |a: usize, b: usize| -> Result<&str, CaptureError> {
        sql.get(toks.start_after(a)..toks.end_before(b))
            .ok_or(CaptureError::Position)
    };
    let with = match s.with_clause {
        Some(_) => format!("{} ", piece(first, merge_kw.0)?),
        None => String::new(),
    };
    let parts = Parts {
        with: &with,
        r: &r,
        target: piece(into.1, using.0)?,
        source: piece(using.1, on.0)?,
        condition: piece(on.1, when.0)?,
    };
    let spans = [(first, merge_kw.0), (using.1, on.0), (on.1, when.0)];
    if toks.param_outside(&spans) {
        return Err(CaptureError::Unsupported(
            "a MERGE parameter outside its WITH, USING and ON clauses",
        ));
    }
    Ok(Images {
        pre: parts.pre_image(t),
        post: parts.post_image(t),
    })
}

/// The forms whose rows the two images can find.
fn check(s: &pb::MergeStmt, t: &Target) -> Result<(), CaptureError> {
    if t.key.is_empty() || t.key_casts.len() != t.key.len() {
        return Err(CaptureError::Unsupported("the table has no primary key"));
    }
    if has_returning(&s.returning_clause) {
        return Err(CaptureError::Unsupported("MERGE ... RETURNING"));
    }
    let by_source = s.merge_when_clauses.iter().any(|w| {
        matches!(w.node.as_ref(), Some(NodeEnum::MergeWhenClause(c))
            if c.match_kind == pb::MergeMatchKind::MergeWhenNotMatchedBySource as i32)
    });
    if by_source {
        return Err(CaptureError::Unsupported(
            "MERGE ... WHEN NOT MATCHED BY SOURCE",
        ));
    }
    match s.source_relation.as_ref().and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::RangeVar(_)) => {}
        Some(NodeEnum::RangeSubselect(sub)) if !sub.lateral => {}
        _ => {
            return Err(CaptureError::Unsupported(
                "a MERGE source other than a table or a subquery",
            ))
        }
    }
    // The images repeat the WITH list: it must only read.
    let writes = s.with_clause.as_ref().is_some_and(|w| {
        w.ctes.iter().any(|c| match c.node.as_ref() {
            Some(NodeEnum::CommonTableExpr(c)) => !matches!(
                c.ctequery.as_ref().and_then(|q| q.node.as_ref()),
                Some(NodeEnum::SelectStmt(_))
            ),
            _ => true,
        })
    });
    if writes {
        return Err(CaptureError::Unsupported("a data-modifying WITH in MERGE"));
    }
    Ok(())
}

/// The MERGE's clauses as the client wrote them.
struct Parts<'a> {
    /// `WITH ... ` or empty.
    with: &'a str,
    /// How the statement refers to its target.
    r: &'a str,
    /// The target (`ONLY`, name, alias).
    target: &'a str,
    /// The source (table or subquery, alias).
    source: &'a str,
    /// The ON condition.
    condition: &'a str,
}

impl Parts<'_> {
    /// The row version: unique across partitions.
    fn version(&self) -> String {
        let r = self.r;
        format!("{r}.tableoid::pg_catalog.text || ':' || {r}.ctid::pg_catalog.text")
    }

    /// `EXISTS (...)`: the row matches the ON condition.
    fn matches(&self) -> String {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE {})",
            self.source, self.condition
        )
    }

    fn pre_image(&self, t: &Target) -> String {
        let keys = text_list("pgwarden_l.pgwarden_k", t.key.len());
        let olds = text_list("pgwarden_l.pgwarden_o", t.columns.len());
        format!(
            "{with}SELECT pg_catalog.set_config('{SETTING}', \
             COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(pgwarden_l.pgwarden_c, \
             pg_catalog.json_build_array({keys}){olds}))::pg_catalog.text, '[]'), true) \
             FROM (SELECT {version} AS pgwarden_c, {cols} FROM {target} WHERE {matches} \
             FOR UPDATE OF {r}) AS pgwarden_l",
            with = self.with,
            version = self.version(),
            cols = pre_columns(self.r, t),
            target = self.target,
            matches = self.matches(),
            r = self.r,
            olds = prefixed(&olds),
        )
    }

    fn post_image(&self, t: &Target) -> String {
        let r = self.r;
        // This transaction's top-level xid as int8; its subtransactions'
        // xids follow it, in the same epoch.
        let x = "pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text::pg_catalog.int8";
        let xmin = format!("{r}.xmin::pg_catalog.text::pg_catalog.int8");
        let ours = format!(
            "CASE WHEN {xmin} >= {x} % 4294967296 THEN pg_catalog.pg_xact_status(({x} - {x} % \
             4294967296 + {xmin})::pg_catalog.text::pg_catalog.xid8) = 'in progress' ELSE false END"
        );
        let mut select = format!("SELECT {} AS pgwarden_c", self.version());
        for (i, k) in t.key.iter().enumerate() {
            select.push_str(&format!(
                ", {r}.{}::pg_catalog.text AS pgwarden_k{i}",
                ident(k)
            ));
        }
        for (i, c) in t.columns.iter().enumerate() {
            select.push_str(&format!(
                ", {r}.{}::pg_catalog.text AS pgwarden_n{i}",
                ident(c)
            ));
        }
        select.push_str(&format!(" , {ours} AS pgwarden_s FROM {}", self.target));
        let key_cols: Vec<String> = t
            .key
            .iter()
            .zip(&t.key_casts)
            .map(|(k, cast)| match cast {
                Some(_) => format!("{r}.{}", ident(k)),
                None => format!("{r}.{}::pg_catalog.text", ident(k)),
            })
            .collect();
        let key_values: Vec<String> = t
            .key_casts
            .iter()
            .enumerate()
            .map(|(i, cast)| match cast {
                Some(c) => format!("(pgwarden_e.v -> 1 ->> {i})::{c}"),
                None => format!("(pgwarden_e.v -> 1 ->> {i})"),
            })
            .collect();
        let keys = text_list("pgwarden_p.pgwarden_k", t.key.len());
        let news = text_list("pgwarden_p.pgwarden_n", t.columns.len());
        format!(
            "{with}SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(\
             pgwarden_p.pgwarden_c, pg_catalog.json_build_array({keys}){news}, \
             pgwarden_p.pgwarden_s))::pg_catalog.text, '[]'), \
             pg_catalog.set_config('{SETTING}', '', true) FROM ({select} WHERE ({key_cols}) IN \
             (SELECT {key_values} FROM pg_catalog.json_array_elements(\
             NULLIF(pg_catalog.current_setting('{SETTING}', true), '')::pg_catalog.json) \
             AS pgwarden_e(v)) \
             UNION {select} WHERE {matches}) AS pgwarden_p",
            with = self.with,
            key_cols = key_cols.join(", "),
            key_values = key_values.join(", "),
            matches = self.matches(),
            news = prefixed(&news),
        )
    }
}

/// `p0::text, p1::text, ...` for `n` columns named `p<i>`: every value as
/// PostgreSQL prints it, so keys compare equal across the two images.
fn text_list(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i}::pg_catalog.text"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `, list` when `list` is not empty.
fn prefixed(list: &str) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(", {list}")
    }
}

/// Where a captured MERGE's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// pgwarden's pre-image is answering.
    PreImage,
    /// The client's MERGE is answering.
    Merge,
    /// pgwarden's post-image is answering; the MERGE's completion waits.
    PostImage,
    /// All three answered.
    Done,
}

/// One pre-image row: version and old values, by key.
#[derive(Debug, Clone)]
struct Before {
    version: String,
    key: Vec<Value>,
    old: Vec<Value>,
    seen: bool,
}

/// A captured MERGE's run through its three statements.
#[derive(Debug, Clone)]
pub struct MergeRun {
    /// Which statement is answering.
    pub phase: Phase,
    /// Pre-image rows by key (the key as JSON text).
    before: HashMap<String, usize>,
    rows: Vec<Before>,
    /// The MERGE's CommandComplete, withheld until the post-image is read.
    complete: Option<Vec<u8>>,
    /// Rows the MERGE reported changed.
    count: Option<u64>,
    /// The pre-image was read.
    pre_read: bool,
}

impl Default for MergeRun {
    fn default() -> Self {
        Self {
            phase: Phase::PreImage,
            before: HashMap::new(),
            rows: Vec::new(),
            complete: None,
            count: None,
            pre_read: false,
        }
    }
}

impl MergeRun {
    /// The pre-image's one cell; false if it could not be read.
    pub fn pre_image(&mut self, cell: Option<&[u8]>, width: usize) -> bool {
        let Some(items) = cell.and_then(|c| serde_json::from_slice::<Vec<Value>>(c).ok()) else {
            return false;
        };
        for item in items {
            let Value::Array(mut v) = item else {
                return false;
            };
            if v.len() != width + 2 {
                return false;
            }
            let old = v.split_off(2);
            let key = v.pop().unwrap_or_default();
            let version = v.pop().and_then(|x| x.as_str().map(str::to_owned));
            let (Some(version), Value::Array(key)) = (version, key) else {
                return false;
            };
            let k = Value::Array(key.clone()).to_string();
            self.before.insert(k, self.rows.len());
            self.rows.push(Before {
                version,
                key,
                old,
                seen: false,
            });
        }
        self.pre_read = true;
        true
    }

    /// The MERGE's CommandComplete (raw message and tag), to withhold.
    pub fn merged(&mut self, raw: &[u8], tag: &str) {
        self.count = tag
            .strip_prefix("MERGE ")
            .and_then(|n| n.trim().parse().ok());
        self.complete = Some(raw.to_vec());
        self.phase = Phase::PostImage;
    }

    /// The post-image's first cell: the rows that changed go to `changes`.
    /// False if it could not be read.
    pub fn post_image(
        &mut self,
        cell: Option<&[u8]>,
        width: usize,
        changes: &mut Changes,
        cap: usize,
    ) -> bool {
        let Some(items) = cell.and_then(|c| serde_json::from_slice::<Vec<Value>>(c).ok()) else {
            return false;
        };
        let mut found = 0u64;
        let mut inserted = Vec::new();
        for item in items {
            let Value::Array(mut v) = item else {
                return false;
            };
            if v.len() != width + 3 {
                return false;
            }
            let ours = v.pop().and_then(|s| s.as_bool()).unwrap_or(false);
            let new = v.split_off(2);
            let key = v.pop().unwrap_or_default();
            let version = v.pop();
            let (Some(Value::String(version)), Value::Array(key)) = (version, key) else {
                return false;
            };
            let k = Value::Array(key.clone()).to_string();
            match self.before.get(&k).and_then(|&i| self.rows.get_mut(i)) {
                Some(b) => {
                    b.seen = true;
                    if b.version != version {
                        found += 1;
                        changes.push(
                            ChangeRow {
                                key,
                                old: std::mem::take(&mut b.old),
                                new,
                                action: Some(Action::Updated),
                            },
                            cap,
                        );
                    }
                }
                None if ours => {
                    found += 1;
                    inserted.push(ChangeRow {
                        key,
                        old: Vec::new(),
                        new,
                        action: Some(Action::Inserted),
                    });
                }
                None => {}
            }
        }
        for b in self.rows.iter_mut().filter(|b| !b.seen) {
            found += 1;
            changes.push(
                ChangeRow {
                    key: std::mem::take(&mut b.key),
                    old: std::mem::take(&mut b.old),
                    new: Vec::new(),
                    action: Some(Action::Deleted),
                },
                cap,
            );
        }
        for row in inserted {
            changes.push(row, cap);
        }
        if !self.pre_read {
            changes.incomplete = Some("the pre-image could not be read".into());
        } else if let Some(n) = self.count.filter(|&n| n != found) {
            changes.incomplete = Some(format!(
                "MERGE changed {n} rows; pgwarden identified {found}"
            ));
        }
        true
    }

    /// The withheld CommandComplete of the MERGE.
    pub fn take_complete(&mut self) -> Option<Vec<u8>> {
        self.complete.take()
    }
}

/// The first cell of a DataRow body: `Some(None)` for NULL.
pub fn first_cell(body: &[u8]) -> Option<Option<&[u8]>> {
    let n = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    if n < 1 {
        return None;
    }
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    body.get(6..6 + len).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::rewrite::rewrite as rewrite_text;
    use serde_json::json;

    fn target() -> Target {
        Target {
            index: 0,
            key: vec!["id".into()],
            columns: vec!["amount".into()],
            key_casts: vec![Some("pg_catalog.int4")],
        }
    }

    #[test]
    fn merge_gets_images_before_and_after() {
        let sql = "MERGE INTO hr.salaries AS s USING hr.raises r ON s.id = r.id \
                   WHEN MATCHED THEN UPDATE SET amount = r.amount;";
        let (out, done) = rewrite_text(sql, &[target()]).unwrap();
        assert_eq!(done[0].op, crate::capture::rewrite::Op::Merge);
        let parts: Vec<&str> = out.split("; ").collect();
        assert_eq!(parts.len(), 3, "{out}");
        assert!(parts[0].starts_with("SELECT pg_catalog.set_config('pgwarden.merge'"));
        assert!(parts[0].contains(
            "FROM hr.salaries AS s WHERE EXISTS (SELECT 1 FROM hr.raises r WHERE s.id = r.id) \
             FOR UPDATE OF \"s\""
        ));
        assert!(parts[1].starts_with("MERGE INTO hr.salaries AS s USING hr.raises r"));
        assert!(parts[2].contains("IN (SELECT (pgwarden_e.v -> 1 ->> 0)::pg_catalog.int4"));
        assert!(parts[2].ends_with("AS pgwarden_p;"), "{out}");
    }

    #[test]
    fn with_lists_and_case_conditions_are_kept() {
        let sql = "/* c */ WITH r AS (SELECT 1 AS id) MERGE INTO t USING (SELECT id FROM r) AS x \
                   ON t.id = CASE WHEN x.id > 0 THEN x.id END \
                   WHEN NOT MATCHED THEN INSERT VALUES (x.id)";
        let (out, _) = rewrite_text(sql, &[target()]).unwrap();
        assert!(
            out.starts_with("/* c */ WITH r AS (SELECT 1 AS id) SELECT"),
            "{out}"
        );
        assert!(out.contains(
            "EXISTS (SELECT 1 FROM (SELECT id FROM r) AS x WHERE t.id = CASE WHEN x.id > 0 THEN \
             x.id END)"
        ));
        assert!(out.contains("; WITH r AS (SELECT 1 AS id) MERGE INTO t"));
    }

    #[test]
    fn forms_the_images_cannot_follow_are_named() {
        for (sql, why) in [
            (
                "MERGE INTO t USING a JOIN b ON a.x = b.x ON t.id = a.id WHEN MATCHED THEN DELETE",
                "source",
            ),
            (
                "WITH d AS (DELETE FROM u RETURNING id) MERGE INTO t USING d ON t.id = d.id \
                 WHEN MATCHED THEN DELETE",
                "data-modifying",
            ),
        ] {
            let e = rewrite_text(sql, &[target()]).unwrap_err().to_string();
            assert!(e.contains(why), "{sql}: {e}");
        }
        let mut t = target();
        t.key.clear();
        t.key_casts.clear();
        let e = rewrite_text(
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
            &[t],
        )
        .unwrap_err();
        assert!(e.to_string().contains("primary key"));
    }

    fn cell(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn rows_are_told_apart_by_version_and_transaction() {
        let mut run = MergeRun::default();
        let pre = json!([
            ["1:(0,1)", ["1"], "100"],
            ["1:(0,2)", ["2"], "200"],
            ["1:(0,3)", ["3"], "300"]
        ]);
        assert!(run.pre_image(Some(&cell(pre)), 1));
        run.merged(b"raw", "MERGE 3");
        assert_eq!(run.phase, Phase::PostImage);
        // 1 updated, 2 untouched, 3 deleted, 4 inserted, 5 someone else's.
        let post = json!([
            ["1:(0,9)", ["1"], "110", true],
            ["1:(0,2)", ["2"], "200", true],
            ["1:(0,10)", ["4"], "400", true],
            ["1:(0,11)", ["5"], "500", false]
        ]);
        let mut changes = Changes::default();
        assert!(run.post_image(Some(&cell(post)), 1, &mut changes, 10));
        let got: Vec<(Value, Option<Action>)> = changes
            .rows
            .iter()
            .map(|r| (Value::Array(r.key.clone()), r.action))
            .collect();
        assert_eq!(
            got,
            vec![
                (json!(["1"]), Some(Action::Updated)),
                (json!(["3"]), Some(Action::Deleted)),
                (json!(["4"]), Some(Action::Inserted)),
            ]
        );
        assert_eq!(changes.rows[0].old, vec![json!("100")]);
        assert_eq!(changes.rows[0].new, vec![json!("110")]);
        assert_eq!(changes.incomplete, None);
        assert_eq!(run.take_complete().as_deref(), Some(&b"raw"[..]));
    }

    #[test]
    fn a_count_that_does_not_add_up_is_reported() {
        let mut run = MergeRun::default();
        assert!(run.pre_image(Some(b"[]"), 1));
        run.merged(b"raw", "MERGE 2");
        let mut changes = Changes::default();
        let post = json!([["1:(0,1)", ["7"], "1", true]]);
        assert!(run.post_image(Some(&cell(post)), 1, &mut changes, 10));
        assert_eq!(
            changes.incomplete.as_deref(),
            Some("MERGE changed 2 rows; pgwarden identified 1")
        );
    }

    #[test]
    fn malformed_images_are_refused() {
        let mut run = MergeRun::default();
        assert!(!run.pre_image(Some(b"{"), 1));
        assert!(!run.pre_image(Some(b"[[\"v\", [\"1\"]]]"), 1));
        assert!(!run.pre_image(None, 1));
        assert_eq!(first_cell(&[0, 1, 255, 255, 255, 255]), Some(None));
        assert_eq!(
            first_cell(&[0, 1, 0, 0, 0, 2, b'[', b']']),
            Some(Some(&b"[]"[..]))
        );
        assert_eq!(first_cell(&[0, 1, 0, 0, 0, 9, b'[']), None);
        assert_eq!(first_cell(&[0]), None);
    }
}

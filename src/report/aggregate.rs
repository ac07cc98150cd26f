//! Entries in, one [`Report`] out. Entries may come in any order (several
//! files, rotated or not): every count is order-free and every list is
//! sorted at the end, so the report depends only on the set of records.
//! Memory stays bounded by the number of users, tables, columns and days,
//! not by the number of records.

use super::input::{Alert, Entry, Login, Outcome, Statement};
use super::model::{
    AlertStats, ByUser, ChangeEntry, ChangeValues, Changes, DayStats, Example, Extraction,
    InputSummary, LoginFailures, OffHours, OffHoursUser, Period, Report, RuleStats, Totals,
    UserStats,
};
use super::options::ReportOptions;
use super::usage::Usage;
use chrono::{NaiveDate, TimeDelta};
use std::collections::{BTreeMap, BTreeSet};

/// Examples kept per user for off-hours activity.
const OFF_HOURS_EXAMPLES: usize = 5;
/// Changes to the watched table listed at most.
const MAX_CHANGES: usize = 1000;
/// Periods up to this many days list every day, even quiet ones.
const MAX_FILLED_DAYS: i64 = 366;

/// Stand-in for a missing user or address.
const UNKNOWN: &str = "(unknown)";

/// Builds a report from entries fed one at a time.
#[derive(Debug)]
pub struct Aggregator {
    options: ReportOptions,
    input: InputSummary,
    totals: Totals,
    users: BTreeMap<String, UserAcc>,
    usage: Usage,
    rules: BTreeMap<(String, String), (u64, ByUser)>,
    alerts: BTreeMap<String, (u64, ByUser)>,
    top: Vec<Extraction>,
    off_hours: BTreeMap<String, OffHoursUser>,
    changes: Vec<ChangeEntry>,
    changes_seen: u64,
    login_failures: BTreeMap<(String, String), LoginFailures>,
    days: BTreeMap<NaiveDate, DayStats>,
}

#[derive(Debug, Default)]
struct UserAcc {
    stats: UserStats,
    tables: BTreeSet<String>,
    roles: BTreeSet<String>,
}

impl Aggregator {
    /// An empty report over `options`' period.
    pub fn new(options: ReportOptions) -> Self {
        Self {
            options,
            input: InputSummary::default(),
            totals: Totals::default(),
            users: BTreeMap::new(),
            usage: Usage::default(),
            rules: BTreeMap::new(),
            alerts: BTreeMap::new(),
            top: Vec::new(),
            off_hours: BTreeMap::new(),
            changes: Vec::new(),
            changes_seen: 0,
            login_failures: BTreeMap::new(),
            days: BTreeMap::new(),
        }
    }

    /// Notes an input file's name.
    pub fn file(&mut self, name: String) {
        self.input.files.push(name);
    }

    /// Notes a line that is not an audit record; `why` is `FILE:LINE: reason`.
    pub fn malformed(&mut self, why: String) {
        self.input.lines += 1;
        self.input.malformed += 1;
        if self.input.malformed_examples.len() < 10 {
            self.input.malformed_examples.push(why);
        }
    }

    /// Counts one entry (the period is checked here).
    pub fn add(&mut self, entry: Entry) {
        self.input.lines += 1;
        let Some(ts) = entry.time() else {
            self.input.checkpoints += 1;
            return;
        };
        if !self.options.covers(ts) {
            self.input.outside_period += 1;
            return;
        }
        self.input.records += 1;
        match entry {
            Entry::Statement(s) => self.statement(&s),
            Entry::Login(l) => self.login(l),
            Entry::Alert(a) => self.alert(a),
            Entry::Checkpoint | Entry::Other(_) => {}
        }
    }

    fn day(&mut self, date: NaiveDate) -> &mut DayStats {
        self.days.entry(date).or_insert_with(|| empty_day(date))
    }

    fn statement(&mut self, s: &Statement) {
        let user = name_or_unknown(&s.user);
        let off = self.options.off_hours(s.ts);
        let masked = s.outcome == Outcome::Ok
            && s.policy.as_ref().and_then(|p| p.action.as_deref()) == Some("mask");
        let (read, write) = match s.outcome {
            Outcome::Ok if s.writes() => (false, true),
            Outcome::Ok => (!s.access.is_empty(), false),
            _ => (false, false),
        };
        let refused = s.outcome == Outcome::Refused;
        let error = s.outcome == Outcome::Error;
        let t = &mut self.totals;
        let u = self.users.entry(user.clone()).or_default();
        for (total, mine, yes) in [
            (&mut t.statements, &mut u.stats.statements, true),
            (&mut t.reads, &mut u.stats.reads, read),
            (&mut t.writes, &mut u.stats.writes, write),
            (&mut t.refusals, &mut u.stats.refusals, refused),
            (&mut t.errors, &mut u.stats.errors, error),
            (&mut t.masks, &mut u.stats.masks, masked),
        ] {
            *total += u64::from(yes);
            *mine += u64::from(yes);
        }
        t.rows_returned += s.rows_returned;
        t.rows_affected += s.rows_affected;
        u.stats.rows_returned += s.rows_returned;
        u.stats.rows_affected += s.rows_affected;
        u.stats.off_hours += u64::from(off);
        u.tables.extend(s.access.iter().map(|a| a.relation.clone()));
        u.roles.extend(s.effective.iter().cloned());

        self.usage.add(s, &user, self.options.policy.as_deref());
        if let Some(p) = &s.policy {
            let action = p.action.clone().unwrap_or_default();
            if !action.is_empty() && action != "allow" {
                let rule = p.rule.clone().unwrap_or_else(|| "(default)".into());
                let r = self.rules.entry((rule, action)).or_default();
                r.0 += 1;
                *r.1.entry(user.clone()).or_default() += 1;
            }
        }
        let date = self.options.day_of(s.ts);
        let d = self.day(date);
        d.statements += 1;
        d.rows_returned += s.rows_returned;
        d.rows_affected += s.rows_affected;
        d.refusals += u64::from(refused);

        if s.outcome == Outcome::Ok && s.rows_returned > 0 {
            self.extraction(s, &user);
        }
        if off {
            self.off_hours(s, &user);
        }
        self.change(s, &user);
    }

    fn extraction(&mut self, s: &Statement, user: &str) {
        self.top.push(Extraction {
            timestamp: s.ts,
            user: user.to_owned(),
            effective_role: s.effective.clone(),
            source_ip: s.ip.clone(),
            query: s.text.clone(),
            rows: s.rows_returned,
            tables: s.access.iter().map(|a| a.relation.clone()).collect(),
        });
        // Trim now and then rather than per record.
        if self.top.len() > 2 * self.options.top.max(8) {
            sort_top(&mut self.top);
            self.top.truncate(self.options.top);
        }
    }

    fn off_hours(&mut self, s: &Statement, user: &str) {
        let o = self
            .off_hours
            .entry(user.to_owned())
            .or_insert_with(|| OffHoursUser {
                user: user.to_owned(),
                ..OffHoursUser::default()
            });
        o.statements += 1;
        o.rows_returned += s.rows_returned;
        o.examples.push(example(s));
        if o.examples.len() > 2 * OFF_HOURS_EXAMPLES {
            sort_examples(&mut o.examples);
            o.examples.truncate(OFF_HOURS_EXAMPLES);
        }
    }

    /// Statements writing the watched table, with their old/new values.
    fn change(&mut self, s: &Statement, user: &str) {
        let table = &self.options.changes_table;
        let writes_it = s
            .access
            .iter()
            .any(|a| &a.relation == table && (!a.written.is_empty() || a.deletes_rows));
        if !writes_it {
            return;
        }
        self.changes_seen += 1;
        self.changes.push(ChangeEntry {
            timestamp: s.ts,
            user: user.to_owned(),
            effective_role: s.effective.clone(),
            operation: s.operation.clone(),
            outcome: outcome_name(s.outcome).into(),
            rows_affected: s.rows_affected,
            query: s.text.clone(),
            values: s
                .changes
                .iter()
                .filter(|c| c.relation.as_ref().is_none_or(|r| r == table))
                .map(|c| ChangeValues {
                    old: c.old.clone(),
                    new: c.new.clone(),
                })
                .collect(),
        });
        if self.changes.len() > 2 * MAX_CHANGES {
            sort_changes(&mut self.changes);
            self.changes.truncate(MAX_CHANGES);
        }
    }

    fn login(&mut self, l: Login) {
        if l.ok {
            self.totals.logins += 1;
            return;
        }
        self.totals.login_failures += 1;
        let date = self.options.day_of(l.ts);
        self.day(date).login_failures += 1;
        let user = name_or_unknown(&l.user);
        let ip = l.ip.unwrap_or_else(|| UNKNOWN.into());
        let f = self
            .login_failures
            .entry((user.clone(), ip.clone()))
            .or_insert_with(|| LoginFailures {
                user,
                source_ip: ip,
                failures: 0,
                first: l.ts,
                last: l.ts,
                sqlstates: Vec::new(),
            });
        f.failures += 1;
        f.first = f.first.min(l.ts);
        f.last = f.last.max(l.ts);
        if let Some(code) = l.sqlstate {
            if !f.sqlstates.contains(&code) {
                f.sqlstates.push(code);
                f.sqlstates.sort();
            }
        }
    }

    fn alert(&mut self, a: Alert) {
        let user = name_or_unknown(&a.user);
        self.totals.alerts += 1;
        self.users.entry(user.clone()).or_default().stats.alerts += 1;
        let date = self.options.day_of(a.ts);
        self.day(date).alerts += 1;
        let rule = name_or_unknown(&a.rule);
        let r = self.alerts.entry(rule).or_default();
        r.0 += 1;
        *r.1.entry(user).or_default() += 1;
    }

    /// The finished report.
    pub fn finish(mut self) -> Report {
        self.fill_days();
        let o = &self.options;
        self.totals.users = self.users.len() as u64;
        let mut users: Vec<UserStats> = self
            .users
            .into_iter()
            .map(|(name, acc)| UserStats {
                user: name,
                distinct_tables: acc.tables.len(),
                tables: acc.tables.into_iter().collect(),
                effective_roles: acc.roles.into_iter().collect(),
                ..acc.stats
            })
            .collect();
        users.sort_by(|a, b| b.statements.cmp(&a.statements).then(a.user.cmp(&b.user)));
        let (tables, classifications) = self.usage.finish(o.policy.is_some());
        let mut rules: Vec<RuleStats> = self
            .rules
            .into_iter()
            .map(|((rule, action), (statements, users))| RuleStats {
                rule,
                action,
                statements,
                users,
            })
            .collect();
        rules.sort_by_key(|x| std::cmp::Reverse(x.statements));
        let mut alerts: Vec<AlertStats> = self
            .alerts
            .into_iter()
            .map(|(rule, (alerts, users))| AlertStats {
                rule,
                alerts,
                users,
            })
            .collect();
        alerts.sort_by_key(|x| std::cmp::Reverse(x.alerts));
        sort_top(&mut self.top);
        self.top.truncate(o.top);
        let mut off: Vec<OffHoursUser> = self
            .off_hours
            .into_values()
            .map(|mut u| {
                sort_examples(&mut u.examples);
                u.examples.truncate(OFF_HOURS_EXAMPLES);
                u
            })
            .collect();
        off.sort_by(|a, b| b.statements.cmp(&a.statements).then(a.user.cmp(&b.user)));
        sort_changes(&mut self.changes);
        self.changes.truncate(MAX_CHANGES);
        let mut failures: Vec<LoginFailures> = self.login_failures.into_values().collect();
        failures.sort_by_key(|x| std::cmp::Reverse(x.failures));
        Report {
            period: Period {
                from: o.from,
                to: o.to,
                time_zone: o.tz.name().to_owned(),
                office_hours: o.office_hours.to_string(),
            },
            input: self.input,
            totals: self.totals,
            users,
            tables,
            classifications,
            rules,
            alerts,
            largest_extractions: self.top,
            off_hours: OffHours {
                statements: off.iter().map(|u| u.statements).sum(),
                users: off,
            },
            changes: Changes {
                table: o.changes_table.clone(),
                with_values: self.changes.iter().any(|c| !c.values.is_empty()),
                omitted: self.changes_seen - self.changes.len() as u64,
                statements: self.changes,
            },
            login_failures: failures,
            days: self.days.into_values().collect(),
        }
    }

    /// Adds the quiet days of a period short enough to list day by day.
    fn fill_days(&mut self) {
        let o = &self.options;
        let Some(last) = o.to.checked_sub_signed(TimeDelta::microseconds(1)) else {
            return;
        };
        let (first, last) = (o.day_of(o.from), o.day_of(last));
        if (last - first).num_days() > MAX_FILLED_DAYS {
            return;
        }
        for d in first.iter_days().take_while(|d| *d <= last) {
            self.days.entry(d).or_insert_with(|| empty_day(d));
        }
    }
}

fn empty_day(day: NaiveDate) -> DayStats {
    DayStats {
        day,
        statements: 0,
        rows_returned: 0,
        rows_affected: 0,
        refusals: 0,
        alerts: 0,
        login_failures: 0,
    }
}

fn name_or_unknown(s: &str) -> String {
    if s.is_empty() {
        UNKNOWN.into()
    } else {
        s.to_owned()
    }
}

/// `ok`, `error`, `refused`.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
        Outcome::Refused => "refused",
    }
}

fn example(s: &Statement) -> Example {
    Example {
        timestamp: s.ts,
        query: s.text.clone(),
        rows: s.rows_returned,
        outcome: outcome_name(s.outcome).into(),
    }
}

/// Most rows first; ties: earliest, then by user and text.
fn sort_top(top: &mut [Extraction]) {
    top.sort_by(|a, b| {
        b.rows
            .cmp(&a.rows)
            .then(a.timestamp.cmp(&b.timestamp))
            .then_with(|| a.user.cmp(&b.user))
            .then_with(|| a.query.cmp(&b.query))
    });
}

/// Earliest first; ties by text.
fn sort_examples(e: &mut [Example]) {
    e.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.query.cmp(&b.query))
    });
}

/// Earliest first; ties by user and text.
fn sort_changes(c: &mut [ChangeEntry]) {
    c.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.user.cmp(&b.user))
            .then_with(|| a.query.cmp(&b.query))
    });
}

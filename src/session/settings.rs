//! The session settings the analyser depends on (search_path, role, temp
//! relations), tracked from the statements that change them with
//! PostgreSQL's transactional semantics: a SET inside a transaction that
//! rolls back is undone, SET LOCAL ends with the transaction, savepoints
//! restore what they saw.

use crate::analyse::{SessionEffect, SessionView};

/// One consistent set of values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values {
    /// Raw search_path entries (`$user` not expanded).
    search_path: Vec<String>,
    /// SET ROLE target; `None` = the session user.
    role: Option<String>,
    /// SET SESSION AUTHORIZATION target; `None` = the login user.
    session_user: Option<String>,
    /// Temporary relations created in this session.
    temp_relations: Vec<String>,
    /// Permanent relations created in the open transaction.
    created: Vec<crate::analyse::CreatedRelation>,
}

/// Tracks the settings of one session.
#[derive(Debug, Clone)]
pub struct Settings {
    login_user: String,
    default_search_path: Vec<String>,
    /// As of the last transaction boundary.
    stable: Values,
    /// Including changes of the transaction in progress.
    current: Values,
    /// SET LOCAL overrides, dropped at the end of the transaction.
    local_search_path: Option<Vec<String>>,
    local_role: Option<Option<String>>,
    /// Values at each open savepoint (a stack is enough for nesting).
    savepoints: Vec<Values>,
    /// An error happened since the last transaction boundary.
    failed: bool,
    /// standard_conforming_strings as last reported by the server.
    pub standard_conforming_strings: bool,
    /// Bumped on every change that could change [`Settings::view`].
    generation: u64,
}

/// Parses a search_path value as `SHOW search_path` prints it.
pub fn parse_search_path(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(q) => q.replace("\"\"", "\""),
                None => p.to_lowercase(),
            }
        })
        .filter(|p| !p.is_empty())
        .collect()
}

impl Settings {
    /// Settings of a session that logged in as `user` with `search_path`.
    pub fn new(user: &str, search_path: Vec<String>) -> Self {
        let values = Values {
            search_path: search_path.clone(),
            role: None,
            session_user: None,
            temp_relations: Vec::new(),
            created: Vec::new(),
        };
        Self {
            login_user: user.to_owned(),
            default_search_path: search_path,
            stable: values.clone(),
            current: values,
            local_search_path: None,
            local_role: None,
            savepoints: Vec::new(),
            failed: false,
            standard_conforming_strings: true,
            generation: 0,
        }
    }

    /// Changes whenever the analyser's view of the session may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
            .wrapping_add(u64::from(self.standard_conforming_strings))
    }

    /// The session user (login role unless SET SESSION AUTHORIZATION).
    pub fn session_user(&self) -> &str {
        self.current
            .session_user
            .as_deref()
            .unwrap_or(&self.login_user)
    }

    /// The role whose privileges apply now.
    pub fn effective_role(&self) -> &str {
        match &self.local_role {
            Some(Some(r)) => r,
            Some(None) => self.session_user(),
            None => self
                .current
                .role
                .as_deref()
                .unwrap_or_else(|| self.session_user()),
        }
    }

    /// What the analyser needs: the search path with `$user` expanded.
    pub fn view(&self) -> SessionView {
        let raw = self
            .local_search_path
            .as_ref()
            .unwrap_or(&self.current.search_path);
        let role = self.effective_role();
        let expand = |path: &[String]| -> Vec<String> {
            path.iter()
                .map(|s| {
                    if s == "$user" {
                        role.to_owned()
                    } else {
                        s.clone()
                    }
                })
                .collect()
        };
        SessionView {
            search_path: expand(raw),
            default_search_path: expand(&self.default_search_path),
            temp_relations: self.current.temp_relations.clone(),
            created: self.current.created.clone(),
            standard_conforming_strings: self.standard_conforming_strings,
        }
    }

    /// Applies the effects of a statement that completed successfully.
    pub fn apply(&mut self, effects: &[SessionEffect]) {
        if !effects.is_empty() {
            self.generation = self.generation.wrapping_add(2);
        }
        for e in effects {
            match e {
                SessionEffect::SearchPath { value, local } => {
                    let v = value
                        .clone()
                        .unwrap_or_else(|| self.default_search_path.clone());
                    if *local {
                        self.local_search_path = Some(v);
                    } else {
                        self.current.search_path = v;
                        self.local_search_path = None;
                    }
                }
                SessionEffect::Role {
                    role,
                    local,
                    session_authorization,
                } => {
                    if *session_authorization {
                        self.current.session_user = role.clone();
                        self.current.role = None;
                        self.local_role = None;
                    } else if *local {
                        self.local_role = Some(role.clone());
                    } else {
                        self.current.role = role.clone();
                        self.local_role = None;
                    }
                }
                SessionEffect::ResetAll => {
                    self.current.search_path = self.default_search_path.clone();
                    self.current.role = None;
                    self.local_search_path = None;
                    self.local_role = None;
                }
                SessionEffect::CreatedRelation(c) => self.current.created.push(c.clone()),
                SessionEffect::TempRelation(name)
                    if !self.current.temp_relations.contains(name) =>
                {
                    self.current.temp_relations.push(name.clone());
                }
                _ => {}
            }
        }
    }

    /// A statement completed with command tag `tag` (e.g. "COMMIT");
    /// `command` is the analyser's name for it (tells ROLLBACK TO apart).
    pub fn on_command_complete(&mut self, tag: &str, command: &str) {
        let word = tag.split(' ').next().unwrap_or_default();
        match (word, command) {
            (_, "SAVEPOINT") => self.savepoints.push(self.current.clone()),
            (_, "ROLLBACK TO SAVEPOINT") => {
                self.generation = self.generation.wrapping_add(2);
                if let Some(v) = self.savepoints.last() {
                    self.current = v.clone();
                }
                self.failed = false;
            }
            (_, "RELEASE") => {
                self.savepoints.pop();
            }
            ("COMMIT", _) | ("PREPARE", _) => self.end_transaction(true),
            ("ROLLBACK", _) => self.end_transaction(false),
            _ => {}
        }
    }

    /// The server reported an error: the transaction (explicit or implicit)
    /// will not commit.
    pub fn on_error(&mut self) {
        self.failed = true;
    }

    /// ReadyForQuery: at 'I' any implicit transaction has ended.
    pub fn on_ready(&mut self, idle: bool) {
        if idle {
            let commit = !self.failed;
            self.end_transaction(commit);
        }
    }

    fn end_transaction(&mut self, commit: bool) {
        if !commit || self.local_search_path.is_some() || self.local_role.is_some() {
            self.generation = self.generation.wrapping_add(2);
        }
        if commit {
            self.stable = self.current.clone();
        } else {
            self.current = self.stable.clone();
        }
        // Committed relations come from the catalog's next reload; rolled
        // back ones are gone.
        if !self.current.created.is_empty() {
            self.current.created.clear();
            self.stable.created.clear();
            self.generation = self.generation.wrapping_add(2);
        }
        self.local_search_path = None;
        self.local_role = None;
        self.savepoints.clear();
        self.failed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(v: &[&str]) -> SessionEffect {
        SessionEffect::SearchPath {
            value: Some(v.iter().map(|s| (*s).to_owned()).collect()),
            local: false,
        }
    }

    #[test]
    fn user_is_expanded_and_role_followed() {
        let mut s = Settings::new("alice", parse_search_path("\"$user\", public"));
        assert_eq!(s.view().search_path, vec!["alice", "public"]);
        s.apply(&[SessionEffect::Role {
            role: Some("hr_admin".into()),
            local: false,
            session_authorization: false,
        }]);
        s.on_ready(true);
        assert_eq!(s.view().search_path, vec!["hr_admin", "public"]);
        assert_eq!(s.effective_role(), "hr_admin");
    }

    #[test]
    fn rollback_undoes_set_and_local_ends_with_transaction() {
        let mut s = Settings::new("u", vec!["public".into()]);
        // BEGIN; SET search_path = hr; ROLLBACK;
        s.apply(&[sp(&["hr"])]);
        assert_eq!(s.view().search_path, vec!["hr"]);
        s.on_command_complete("ROLLBACK", "ROLLBACK");
        s.on_ready(true);
        assert_eq!(s.view().search_path, vec!["public"]);
        // BEGIN; SET LOCAL search_path = hr; COMMIT;
        s.apply(&[SessionEffect::SearchPath {
            value: Some(vec!["hr".into()]),
            local: true,
        }]);
        assert_eq!(s.view().search_path, vec!["hr"]);
        s.on_command_complete("COMMIT", "COMMIT");
        assert_eq!(s.view().search_path, vec!["public"]);
        // SET search_path = hr; SELECT 1/0;  (one implicit transaction, failed)
        s.apply(&[sp(&["hr"])]);
        s.on_error();
        s.on_ready(true);
        assert_eq!(s.view().search_path, vec!["public"]);
        // Autocommit SET sticks.
        s.apply(&[sp(&["hr"])]);
        s.on_ready(true);
        assert_eq!(s.view().search_path, vec!["hr"]);
    }

    #[test]
    fn savepoints_restore() {
        let mut s = Settings::new("u", vec!["public".into()]);
        s.on_command_complete("SAVEPOINT", "SAVEPOINT");
        s.apply(&[sp(&["hr"])]);
        s.on_command_complete("ROLLBACK", "ROLLBACK TO SAVEPOINT");
        assert_eq!(s.view().search_path, vec!["public"]);
        s.apply(&[sp(&["x"])]);
        s.on_command_complete("COMMIT", "COMMIT");
        s.on_ready(true);
        assert_eq!(s.view().search_path, vec!["x"]);
    }

    #[test]
    fn parse_shown_search_path() {
        assert_eq!(
            parse_search_path("\"$user\", public, \"My Schema\""),
            vec!["$user", "public", "My Schema"]
        );
    }
}

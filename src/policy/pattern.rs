//! Column name patterns: `schema.table.column`, `schema.table` (every
//! column) or `schema.*`, each part a name or a `*` wildcard.

/// A parsed pattern; parts are `None` for "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: [Part; 3],
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Any,
    Exact(String),
    /// A name with `*` inside (`emp*`): the pieces between stars.
    Glob(Vec<String>),
}

impl Part {
    fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty name part".into());
        }
        if s == "*" {
            return Ok(Part::Any);
        }
        if s.contains('*') {
            return Ok(Part::Glob(s.split('*').map(str::to_owned).collect()));
        }
        Ok(Part::Exact(s.to_owned()))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Part::Any => true,
            Part::Exact(e) => e == name,
            Part::Glob(pieces) => glob(pieces, name),
        }
    }

    fn literal(&self) -> bool {
        matches!(self, Part::Exact(_))
    }
}

/// `*`-glob match of `name` against the pieces between stars.
pub fn glob(pieces: &[String], name: &str) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return name.is_empty();
    };
    let Some(mut tail) = name.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    for m in middle {
        match tail.find(m.as_str()) {
            Some(i) => tail = &tail[i + m.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last.as_str())
}

/// Matches `value` against a pattern with `*` wildcards (whole string).
pub fn wildcard(pattern: &str, value: &str) -> bool {
    let pieces: Vec<String> = pattern.split('*').map(str::to_owned).collect();
    glob(&pieces, value)
}

impl Pattern {
    /// Parses `schema.table[.column]` or `schema.*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let (s, t, c) = match parts.as_slice() {
            [s, t] => (Part::parse(s)?, Part::parse(t)?, Part::Any),
            [s, t, c] => (Part::parse(s)?, Part::parse(t)?, Part::parse(c)?),
            _ => {
                return Err(format!(
                    "\"{text}\" is not schema.table, schema.table.column or schema.*"
                ))
            }
        };
        Ok(Self {
            parts: [s, t, c],
            text: text.to_owned(),
        })
    }

    /// Whether the pattern covers this column.
    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        self.parts[0].matches(schema)
            && self.parts[1].matches(table)
            && self.parts[2].matches(column)
    }

    /// Whether the pattern covers some column of this table.
    pub fn matches_table(&self, schema: &str, table: &str) -> bool {
        self.parts[0].matches(schema) && self.parts[1].matches(table)
    }

    /// How specific: 10 per literal part (a column 30, a table 20, a schema 10).
    pub fn specificity(&self) -> u32 {
        self.parts.iter().filter(|p| p.literal()).count() as u32 * 10
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_and_rank() {
        let col = Pattern::parse("hr.employees.ssn").unwrap();
        let table = Pattern::parse("hr.employees").unwrap();
        let schema = Pattern::parse("hr.*").unwrap();
        let glob = Pattern::parse("hr.emp*.s*n").unwrap();
        assert!(col.matches("hr", "employees", "ssn"));
        assert!(!col.matches("hr", "employees", "ssn2"));
        assert!(table.matches("hr", "employees", "anything"));
        assert!(schema.matches("hr", "salaries", "amount"));
        assert!(!schema.matches("public", "salaries", "amount"));
        assert!(glob.matches("hr", "employees", "ssn"));
        assert!(!glob.matches("hr", "salaries", "ssn"));
        assert_eq!(
            (col.specificity(), table.specificity(), schema.specificity()),
            (30, 20, 10)
        );
        assert!(Pattern::parse("employees").is_err());
        assert!(Pattern::parse("a..b").is_err());
        assert!(wildcard("psql*", "psql-interactive"));
        assert!(!wildcard("psql", "psql2"));
    }
}

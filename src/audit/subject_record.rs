//! `pgwarden.subjects` of a statement record: per data subject (a
//! `[subjects]` entry of the policy), which keys the result returned and
//! which of the subject's columns it read or wrote.

use super::keyset::KeySet;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// What one statement did with the rows of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSeen {
    /// The subject (`schema.table`, e.g. `hr.employees`).
    pub subject: Arc<str>,
    /// Keys the result returned; `None` when the result read the subject's
    /// columns without returning its key ("possibly seen").
    pub keys: Option<KeySet>,
    /// Columns of the subject's tables returned, as `schema.table.column`.
    pub columns: Vec<String>,
    /// Columns of the subject's tables written, as `schema.table.column`
    /// (`schema.table.*` for deleted rows).
    pub written: Vec<String>,
}

impl Serialize for SubjectSeen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SubjectSeen", 5)?;
        st.serialize_field("keys", &self.keys.as_ref().map(KeySet::encode))?;
        st.serialize_field("count", &self.keys.as_ref().map(KeySet::len))?;
        if self.keys.as_ref().is_some_and(|k| !k.complete()) {
            st.serialize_field("complete", &false)?;
        }
        if !self.columns.is_empty() {
            st.serialize_field("columns", &self.columns)?;
        }
        if !self.written.is_empty() {
            st.serialize_field("written", &self.written)?;
        }
        st.end()
    }
}

/// The map `subject → SubjectSeen`, as written in the record.
pub(crate) struct Subjects<'a>(pub &'a [SubjectSeen]);

impl Subjects<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Subjects<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for seen in self.0 {
            m.serialize_entry(&*seen.subject, seen)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::keyset::Key;

    #[test]
    fn serialized_as_a_map_by_subject() {
        let mut keys = KeySet::with_cap(10);
        for i in [1, 2, 3, 9] {
            keys.insert(Key::Int(i));
        }
        let seen = [
            SubjectSeen {
                subject: Arc::from("hr.employees"),
                keys: Some(keys),
                columns: vec!["hr.employees.name".into()],
                written: Vec::new(),
            },
            SubjectSeen {
                subject: Arc::from("hr.patients"),
                keys: None,
                columns: vec!["hr.patients.diagnosis".into()],
                written: Vec::new(),
            },
        ];
        let v = serde_json::to_value(Subjects(&seen)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "hr.employees": {"keys": "1-3,9", "count": 4, "columns": ["hr.employees.name"]},
                "hr.patients": {"keys": null, "count": null, "columns": ["hr.patients.diagnosis"]},
            })
        );
    }
}

//! `native`: the record as `json.rs` serializes it (docs/audit-records.md).

use crate::audit::record::AuditRecord;

/// Appends the native JSON of `record`.
pub(super) fn write(record: &AuditRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    serde_json::to_writer(out, record)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use serde_json::Value;

    #[test]
    fn native_is_the_json_of_the_record() {
        let r = fixtures::select();
        let mut out = Vec::new();
        super::write(&r, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::to_value(&r).unwrap());
        assert_eq!(v["db"]["operation"]["name"], "SELECT");
        assert_eq!(v["pgwarden"]["session_id"], 7);
    }
}

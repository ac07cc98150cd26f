//! Output formats of the audit sinks (`[audit] format`, `[audit.nats]
//! format`): one JSON object per record, in pgwarden's native form
//! (`json.rs`), ECS, or OCSF. docs/audit-formats.md has the field mapping.

mod ecs;
#[cfg(test)]
mod fixtures;
mod native;
mod ocsf;

use super::record::AuditRecord;
use crate::config::AuditFormat;

/// Appends `record` to `out` as one JSON object (no newline) in `format`.
pub(crate) fn write(
    format: AuditFormat,
    record: &AuditRecord,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    match format {
        AuditFormat::Native => native::write(record, out),
        AuditFormat::Ecs => ecs::write(record, out),
        AuditFormat::Ocsf => ocsf::write(record, out),
    }
}

/// The session's client address, an IPv4-mapped IPv6 one shown as IPv4
/// (as the native format does).
fn client_ip(c: &super::record::SessionContext) -> std::net::IpAddr {
    c.client_addr.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::fixtures;
    use crate::audit::verify::{verify_files, VerifyOptions};
    use crate::audit::AuditLog;
    use crate::config::{AuditConfig, AuditFormat};
    use crate::metrics::Metrics;
    use serde_json::Value;

    #[tokio::test]
    async fn the_file_sink_writes_its_format_and_keeps_the_chain() {
        for format in [AuditFormat::Ecs, AuditFormat::Ocsf] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let config = AuditConfig {
                path: Some(path.clone()),
                format,
                ..AuditConfig::default()
            };
            let (h, task) = AuditLog::start(&config, &Metrics::new()).unwrap();
            h.send(fixtures::select()).await;
            h.send(fixtures::disconnect()).await;
            task.shutdown().await;
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 2);
            assert_eq!(
                (lines[0]["seq"].as_u64(), lines[1]["seq"].as_u64()),
                (Some(1), Some(2))
            );
            match format {
                AuditFormat::Ecs => assert_eq!(lines[0]["observer"]["type"], "proxy"),
                _ => assert_eq!(
                    (
                        lines[0]["class_uid"].as_u64(),
                        lines[1]["class_uid"].as_u64()
                    ),
                    (Some(6005), Some(3002))
                ),
            }
            let report = verify_files(&[path], &VerifyOptions::default()).unwrap();
            assert!(report.is_verified(), "{format:?}: {:?}", report.problems);
            assert_eq!(report.records, 2);
        }
    }
}

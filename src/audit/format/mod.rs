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

//! Reading a config file, with errors that name the file, line and field.

use super::{Config, UpstreamTls};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value is malformed or inconsistent.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file (or `command line`).
        path: String,
        /// 1-based line, 0 when not from a file.
        line: usize,
        /// Dotted field name, e.g. `proxy.max_clients`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads, parses and validates a TOML config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates config text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, origin, "", &e))?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        toml_error(text, origin, &field, e.inner())
    })?;
    validate(&config).map_err(|(field, message)| ConfigError::Invalid {
        path: origin.to_owned(),
        line: line_of_field(text, &field),
        field,
        message,
    })?;
    Ok(config)
}

fn toml_error(text: &str, origin: &str, field: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map_or(0, |s| line_of_offset(text, s.start));
    ConfigError::Invalid {
        path: origin.to_owned(),
        line,
        field: if field.is_empty() || field == "." {
            "(document)".into()
        } else {
            field.to_owned()
        },
        message: e.message().trim().to_owned(),
    }
}

pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where a dotted key is set (`a.b[2].c` for arrays of tables),
/// found through toml's spanned parse tree.
pub(crate) fn line_of_field(text: &str, field: &str) -> usize {
    let Ok(table) = toml::de::DeTable::parse(text) else {
        return 0;
    };
    let mut current = table.get_ref();
    let mut parts = field.split('.').peekable();
    // A field that is missing is reported at the table that should hold it.
    let mut last_line = 0;
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((key, value)) = current.get_key_value(name) else {
            return last_line;
        };
        last_line = line_of_offset(text, key.span().start);
        let mut value = value;
        if let Some(i) = index {
            match value.get_ref() {
                toml::de::DeValue::Array(a) => match a.get(i) {
                    Some(v) => {
                        last_line = line_of_offset(text, v.span().start);
                        value = v;
                    }
                    None => return last_line,
                },
                _ => return last_line,
            }
        }
        if parts.peek().is_none() {
            return last_line;
        }
        match value.get_ref() {
            toml::de::DeValue::Table(t) => current = t,
            _ => return last_line,
        }
    }
    last_line
}

/// Checks what types alone cannot; returns the offending field and why.
pub fn validate(c: &Config) -> Result<(), (String, String)> {
    let bad = |f: &str, m: String| Err((f.to_owned(), m));
    if let Err(m) = check_host_port(&c.proxy.listen) {
        return bad("proxy.listen", m);
    }
    if c.proxy.max_clients == 0 {
        return bad("proxy.max_clients", "must be at least 1".into());
    }
    if c.proxy.max_message_size < 1024 || c.proxy.max_message_size > (1 << 30) {
        return bad(
            "proxy.max_message_size",
            "must be between 1024 bytes and 1 GiB (PostgreSQL's own limit)".into(),
        );
    }
    if c.proxy.startup_timeout.0.is_zero() {
        return bad("proxy.startup_timeout", "must be more than 0s".into());
    }
    if crate::upstream::dial::is_unix(&c.upstream.address) {
        // PostgreSQL answers 'N' to SSLRequest on its Unix socket.
        if matches!(
            c.upstream.tls,
            UpstreamTls::Require | UpstreamTls::VerifyFull
        ) {
            return bad(
                "upstream.tls",
                format!(
                    "PostgreSQL offers no TLS on a Unix socket ({:?}); use \"disable\" or \"prefer\", or a HOST:PORT address",
                    c.upstream.address
                ),
            );
        }
    } else if let Err(m) = check_host_port(&c.upstream.address) {
        return bad(
            "upstream.address",
            format!("{m} (nor an absolute path to a Unix socket)"),
        );
    }
    if let Some(m) = &c.metrics.listen {
        if let Err(m) = check_host_port(m) {
            return bad("metrics.listen", m);
        }
    }
    match (&c.tls.cert_file, &c.tls.key_file) {
        (Some(_), None) => {
            return bad("tls.key_file", "is needed when tls.cert_file is set".into())
        }
        (None, Some(_)) => {
            return bad("tls.cert_file", "is needed when tls.key_file is set".into())
        }
        (Some(cert), Some(key)) => {
            for (field, p) in [("tls.cert_file", cert), ("tls.key_file", key)] {
                if !p.is_file() {
                    return bad(field, format!("{} is not a readable file", p.display()));
                }
            }
        }
        (None, None) if c.tls.require => {
            return bad("tls.require", "needs tls.cert_file and tls.key_file".into())
        }
        (None, None) => {}
    }
    if c.catalog.user.is_empty() {
        return bad("catalog.user", "must not be empty".into());
    }
    if c.catalog.refresh_interval.0 < std::time::Duration::from_secs(1) {
        return bad("catalog.refresh_interval", "must be at least 1s".into());
    }
    if c.catalog.connect_timeout.0.is_zero() {
        return bad("catalog.connect_timeout", "must be more than 0s".into());
    }
    if let Some(ca) = &c.upstream.ca_file {
        if !ca.is_file() {
            return bad(
                "upstream.ca_file",
                format!("{} is not a readable file", ca.display()),
            );
        }
        if c.upstream.tls != UpstreamTls::VerifyFull {
            return bad(
                "upstream.ca_file",
                "is only used with tls = \"verify-full\"".into(),
            );
        }
    }
    validate_audit(&c.audit)?;
    super::budget::validate(&c.budget)?;
    super::baseline::validate(&c.baseline)?;
    super::alerts::validate(&c.alerts)
}

/// Limits of the `[audit]` section; `max_file_size` etc. are checked even when
/// `path` is unset so a typo does not wait until auditing is switched on.
fn validate_audit(a: &super::AuditConfig) -> Result<(), (String, String)> {
    let bad = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
    if let Some(p) = &a.path {
        if p.as_os_str().is_empty() {
            return bad(
                "audit.path",
                "must not be empty (leave it out to turn auditing off)",
            );
        }
        if p.as_os_str() != "-" {
            if p.is_dir() {
                return Err((
                    "audit.path".into(),
                    format!("{} is a directory", p.display()),
                ));
            }
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = parent {
                if !dir.is_dir() {
                    return Err((
                        "audit.path".into(),
                        format!("directory {} does not exist", dir.display()),
                    ));
                }
            }
        }
    }
    if a.max_file_size < 4096 {
        return bad("audit.max_file_size", "must be at least 4096 bytes");
    }
    if a.keep_files == 0 || a.keep_files > 1000 {
        return bad("audit.keep_files", "must be between 1 and 1000");
    }
    if a.queue_capacity == 0 || a.queue_capacity > (1 << 24) {
        return bad("audit.queue_capacity", "must be between 1 and 16777216");
    }
    if a.sign_interval.0 < std::time::Duration::from_millis(10) {
        return bad("audit.sign_interval", "must be at least 10ms");
    }
    if a.sign_interval_records == 0 {
        return bad("audit.sign_interval_records", "must be at least 1");
    }
    if let Some(key) = &a.signing_key {
        // Read now, so a bad key stops the start instead of the first checkpoint.
        if let Err(e) = crate::audit::keys::load_signing_key(key) {
            return Err(("audit.signing_key".into(), e.to_string()));
        }
    }
    if a.durability == super::AuditDurability::Strict
        && a.on_full == super::AuditOnFull::DropAndCount
    {
        return bad(
            "audit.durability",
            "\"strict\" cannot hold results for records that on_full = \"drop_and_count\" may drop; use on_full = \"block\"",
        );
    }
    if let Some(n) = &a.nats {
        if a.path.is_none() {
            return bad(
                "audit.nats",
                "needs audit.path (the file sink runs alongside)",
            );
        }
        validate_nats(n)?;
    }
    Ok(())
}

/// Limits of `[audit.nats]`.
fn validate_nats(n: &super::NatsConfig) -> Result<(), (String, String)> {
    let bad = |f: &str, m: &str| Err((format!("audit.nats.{f}"), m.to_owned()));
    if !n.url.contains("://") && n.url.rsplit_once(':').is_none() {
        return bad("url", "is not a NATS URL (nats://HOST:PORT)");
    }
    // JetStream subjects and stream names: no spaces; a stream name no '.', '*', '>'.
    if n.subject.is_empty() || n.subject.contains(char::is_whitespace) {
        return bad("subject", "must be a non-empty subject without spaces");
    }
    if n.stream.is_empty()
        || n.stream
            .contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return bad(
            "stream",
            "must be a name without spaces, '.', '*', '>', '/'",
        );
    }
    if n.buffer_dir.as_os_str().is_empty() {
        return bad("buffer_dir", "must not be empty");
    }
    if n.buffer_max_bytes < 1 << 20 {
        return bad("buffer_max_bytes", "must be at least 1048576 (1 MiB)");
    }
    if n.max_in_flight == 0 || n.max_in_flight > 4096 {
        return bad("max_in_flight", "must be between 1 and 4096");
    }
    if n.ack_timeout.0 < std::time::Duration::from_millis(100) {
        return bad("ack_timeout", "must be at least 100ms");
    }
    if n.duplicate_window.0 < std::time::Duration::from_secs(1) {
        return bad("duplicate_window", "must be at least 1s");
    }
    if let Some(r) = &n.replica_id {
        if r.is_empty() || r.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return bad("replica_id", "must be a non-empty name without spaces");
        }
    }
    Ok(())
}

fn check_host_port(s: &str) -> Result<(), String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{s:?} is not HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let c = parse("", "x.toml").unwrap();
        assert_eq!(c.proxy.listen, "127.0.0.1:6432");
        assert_eq!(c.upstream.tls, UpstreamTls::Prefer);
        assert_eq!(c.upstream.host(), "127.0.0.1");
    }

    #[test]
    fn upstream_may_be_a_unix_socket_without_tls() {
        let c = parse(
            "[upstream]\naddress = \"/var/run/postgresql\"\ntls = \"prefer\"\n",
            "u.toml",
        )
        .unwrap();
        assert_eq!(c.upstream.address, "/var/run/postgresql");
        let e = parse(
            "[upstream]\naddress = \"/var/run/postgresql\"\ntls = \"require\"\n",
            "u.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("u.toml:") && e.contains("upstream.tls"),
            "{e}"
        );
        assert!(e.contains("no TLS on a Unix socket"), "{e}");
        let e = parse("[upstream]\naddress = \"pg.local\"\n", "u.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("upstream.address") && e.contains("Unix socket"),
            "{e}"
        );
    }

    #[test]
    fn type_error_names_file_line_field() {
        let e = parse("[proxy]\n\nmax_clients = \"many\"\n", "p.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("p.toml:3: proxy.max_clients:"), "{s}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = parse("[upstream]\nadress = \"x:1\"\n", "p.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("p.toml:2") && s.contains("adress"), "{s}");
    }

    #[test]
    fn catalog_section_defaults_and_checks() {
        let c = parse("", "x.toml").unwrap();
        assert_eq!(c.catalog.user, "pgwarden");
        assert_eq!(c.catalog.password, None);
        assert_eq!(c.catalog.refresh_interval.0.as_secs(), 60);
        assert_eq!(c.catalog.connect_timeout.0.as_secs(), 5);
        let c = parse(
            "[catalog]\nuser = \"svc\"\npassword = \"pw\"\nrefresh_interval = \"2m\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.catalog.refresh_interval.0.as_secs(), 120);
        assert!(
            !format!("{c:?}").contains("pw\""),
            "password must not be logged"
        );
        let e = parse("[catalog]\n\nrefresh_interval = \"0s\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:3: catalog.refresh_interval"),
            "{e}"
        );
    }

    #[test]
    fn semantic_error_has_line() {
        let e = parse("[proxy]\nmax_clients = 0\n", "p.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.toml:2: proxy.max_clients: must be at least 1"
        );
        let e = parse("[tls]\n\n\ncert_file = \"/nonexistent\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:1: tls.key_file"), "{e}");
        let e = parse("[proxy]\nstartup_timeout = \"ten\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:2: proxy.startup_timeout"),
            "{e}"
        );
    }

    #[test]
    fn audit_section_is_validated() {
        let c = parse("", "x.toml").unwrap();
        assert!(c.audit.path.is_none());
        assert_eq!(c.audit.queue_capacity, 65_536);
        let c = parse(
            "[audit]\npath = \"-\"\non_full = \"drop_and_count\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.audit.on_full, crate::config::AuditOnFull::DropAndCount);
        assert_eq!(c.audit.durability, crate::config::AuditDurability::None);
        let c = parse("[audit]\ndurability = \"strict\"\n", "p.toml").unwrap();
        assert_eq!(c.audit.durability, crate::config::AuditDurability::Strict);
        let e = parse(
            "[audit]\non_full = \"drop_and_count\"\ndurability = \"strict\"\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:3: audit.durability"),
            "{e}"
        );
        let e = parse("[audit]\ndurability = \"always\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:2: audit.durability"),
            "{e}"
        );
        let e = parse("[audit]\nkeep_files = 0\n", "p.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.toml:2: audit.keep_files: must be between 1 and 1000"
        );
        let e = parse("[audit]\n\nqueue_capacity = 0\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:3: audit.queue_capacity"),
            "{e}"
        );
        let e = parse("[audit]\npath = \"/nonexistent/dir/a.log\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: audit.path"), "{e}");
        let e = parse("[audit]\non_full = \"panic\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: audit.on_full"), "{e}");
    }

    #[test]
    fn budget_section_is_validated() {
        let c = parse("", "x.toml").unwrap();
        assert_eq!(c.budget.store, crate::config::BudgetStore::Memory);
        assert_eq!(c.budget.timeout.0.as_millis(), 250);
        let c = parse(
            "[budget]\nstore = \"redis\"\nredis_url = \"redis://:s3cret@127.0.0.1:6379/2\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.budget.store, crate::config::BudgetStore::Redis);
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "password must not be logged"
        );
        let e = parse("[budget]\nstore = \"redis\"\n", "p.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.toml:1: budget.redis_url: is needed when budget.store = \"redis\""
        );
        let e = parse("[budget]\n\nredis_url = \"http://x:1\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:3: budget.redis_url: "),
            "{e}"
        );
        let e = parse("[budget]\nstore = \"etcd\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: budget.store"), "{e}");
        let e = parse("[budget]\ntimeout = \"0s\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: budget.timeout"), "{e}");
    }

    #[test]
    fn deploy_example_shows_budget_and_alert_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/pgwarden.toml");
        let c = load_file(&path).unwrap();
        let budget = crate::config::BudgetConfig::default();
        let alerts = crate::config::AlertConfig::default();
        assert_eq!(format!("{:?}", c.budget), format!("{budget:?}"));
        assert_eq!(format!("{:?}", c.alerts), format!("{alerts:?}"));
    }

    #[test]
    fn alerts_section_is_validated() {
        let c = parse("", "x.toml").unwrap();
        assert!(c.alerts.webhooks.is_empty());
        assert_eq!(c.alerts.group_window.0.as_secs(), 60);
        let c = parse(
            "[alerts]\nwebhooks = [\"http://127.0.0.1:9/hook\"]\nattempts = 3\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.alerts.webhooks, ["http://127.0.0.1:9/hook"]);
        assert_eq!(c.alerts.attempts, 3);
        let e = parse(
            "[alerts]\n\nwebhooks = [\"http://a:1/\", \"https://b/\"]\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:3: alerts.webhooks: entry 2:"),
            "{e}"
        );
        let e = parse("[alerts]\nwebhooks = [\"not a url\"]\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:2: alerts.webhooks"),
            "{e}"
        );
        let e = parse("[alerts]\nmax_delay = \"1ms\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:2: alerts.max_delay"),
            "{e}"
        );
    }

    #[test]
    fn audit_nats_section_is_validated() {
        let c = parse(
            "[audit]\npath = \"-\"\nformat = \"ocsf\"\n[audit.nats]\nurl = \"nats://n:4222\"\nformat = \"ecs\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.audit.format, crate::config::AuditFormat::Ocsf);
        let n = c.audit.nats.expect("nats section");
        assert_eq!(n.url, "nats://n:4222");
        assert_eq!(n.format, crate::config::AuditFormat::Ecs);
        assert_eq!(n.stream, "PGWARDEN_AUDIT");
        assert_eq!(n.duplicate_window.0, std::time::Duration::from_secs(120));
        let e = parse("[audit.nats]\nurl = \"nats://n:4222\"\n", "p.toml").unwrap_err();
        assert!(
            e.to_string().contains("audit.nats: needs audit.path"),
            "{e}"
        );
        let e = parse(
            "[audit]\npath = \"-\"\n[audit.nats]\nstream = \"a.b\"\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("p.toml:4: audit.nats.stream"),
            "{e}"
        );
        let e = parse(
            "[audit]\npath = \"-\"\n[audit.nats]\nbuffer_max_bytes = 10\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("audit.nats.buffer_max_bytes"), "{e}");
        let e = parse("[audit]\nformat = \"xml\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: audit.format"), "{e}");
    }
}

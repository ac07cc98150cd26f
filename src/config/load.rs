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

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where a dotted key is set, found through toml's spanned parse tree.
fn line_of_field(text: &str, field: &str) -> usize {
    let Ok(table) = toml::de::DeTable::parse(text) else {
        return 0;
    };
    let mut current = table.get_ref();
    let mut parts = field.split('.').peekable();
    // A field that is missing is reported at the table that should hold it.
    let mut last_line = 0;
    while let Some(part) = parts.next() {
        let Some((key, value)) = current.get_key_value(part) else {
            return last_line;
        };
        last_line = line_of_offset(text, key.span().start);
        if parts.peek().is_none() {
            return line_of_offset(text, key.span().start);
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
    if let Err(m) = check_host_port(&c.upstream.address) {
        return bad("upstream.address", m);
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
}

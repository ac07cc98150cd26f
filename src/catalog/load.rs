//! Reading one database's catalog over a service connection: opening that
//! connection (TLS per `upstream.tls`) and a handful of whole-catalog queries
//! in one read-only snapshot, pipelined.

use super::model::{Catalog, Column, Function, Oid, RelKind, Relation, Role};
use crate::config::{Config, UpstreamTls};
use crate::net::tls::{self, TlsError};
use crate::upstream::dial::{self, Socket};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use thiserror::Error;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a catalog could not be read.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The connection to PostgreSQL's socket failed.
    #[error("catalog connection to {addr}: {source}")]
    Connect {
        /// `upstream.address`.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting and logging in took longer than `catalog.connect_timeout`.
    #[error("catalog connection to {0}: timeout")]
    ConnectTimeout(String),
    /// The TLS configuration could not be built (CA file, server name).
    #[error("catalog connection: {0}")]
    Tls(#[from] TlsError),
    /// TLS negotiation or login was refused.
    #[error("catalog connection to {addr} as {user}: {}", pg_detail(.source))]
    Login {
        /// `upstream.address`.
        addr: String,
        /// `catalog.user`.
        user: String,
        /// What PostgreSQL or tokio-postgres said.
        source: tokio_postgres::Error,
    },
    /// A catalog query failed or returned an unexpected type.
    #[error("reading the catalog: {}", pg_detail(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The catalog queries did not finish in time.
    #[error("reading the catalog: no answer within {0:?}")]
    Timeout(Duration),
    /// [`super::Catalogs::shutdown`] was called.
    #[error("the catalog service is shut down")]
    ShutDown,
}

/// tokio-postgres displays a server error as just "db error"; the operator
/// needs PostgreSQL's message (e.g. which authentication failed).
fn pg_detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Server-side limits of the service connection: a catalog read must never
/// wait long on a lock held by someone's open DDL transaction (it is retried
/// on the next reload instead), nor run away. search_path = pg_catalog makes
/// pg_get_viewdef qualify every other name, so view bodies resolve exactly.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=30s -c lock_timeout=5s -c default_transaction_read_only=on -c search_path=pg_catalog";

/// Opens a service connection to `database` as `catalog.user`, with TLS per
/// `upstream.tls` (prefer falls back to plaintext when TLS fails); the
/// connection is driven on a background task until the client is dropped.
pub async fn connect(config: &Config, database: &str) -> Result<Client, CatalogError> {
    if dial::is_unix(&config.upstream.address) {
        // No TLS on PostgreSQL's Unix socket (the config check refuses
        // modes that require it).
        return connect_plain(config, database).await;
    }
    match config.upstream.tls {
        UpstreamTls::Disable => connect_plain(config, database).await,
        UpstreamTls::Prefer => match connect_tls(config, database, SslMode::Prefer).await {
            // A server error means TLS itself worked: retrying would only repeat it.
            Err(CatalogError::Login { source, .. }) if source.as_db_error().is_none() => {
                tracing::debug!(error = %source, "catalog connection: TLS failed, trying plaintext");
                connect_plain(config, database).await
            }
            other => other,
        },
        UpstreamTls::Require | UpstreamTls::VerifyFull => {
            connect_tls(config, database, SslMode::Require).await
        }
    }
}

fn pg_config(config: &Config, database: &str, ssl: SslMode) -> tokio_postgres::Config {
    let mut pc = tokio_postgres::Config::new();
    pc.user(&config.catalog.user)
        .dbname(database)
        .application_name("pgwarden-catalog")
        .options(SESSION_OPTIONS)
        .ssl_mode(ssl);
    if let Some(pw) = config.catalog.effective_password() {
        pc.password(pw);
    }
    pc
}

async fn socket(config: &Config) -> Result<Socket, CatalogError> {
    let addr = &config.upstream.address;
    dial::dial(addr)
        .await
        .map_err(|source| CatalogError::Connect {
            addr: addr.clone(),
            source,
        })
}

fn login_err(config: &Config, source: tokio_postgres::Error) -> CatalogError {
    CatalogError::Login {
        addr: config.upstream.address.clone(),
        user: config.catalog.user.clone(),
        source,
    }
}

async fn connect_plain(config: &Config, database: &str) -> Result<Client, CatalogError> {
    let pc = pg_config(config, database, SslMode::Disable);
    let login = async {
        let (client, conn) = pc
            .connect_raw(socket(config).await?, NoTls)
            .await
            .map_err(|e| login_err(config, e))?;
        tokio::spawn(drive(conn));
        Ok(client)
    };
    within_connect_timeout(config, login).await
}

async fn connect_tls(
    config: &Config,
    database: &str,
    ssl: SslMode,
) -> Result<Client, CatalogError> {
    // Same trust rules as the proxy's own upstream connections.
    let connector = tls::connector(config)?;
    let name = match &config.upstream.server_name {
        Some(n) => n.clone(),
        None => config.upstream.host().to_owned(),
    };
    let mut make = MakeRustlsConnect::new(connector.config().as_ref().clone());
    let tls_connect =
        MakeTlsConnect::<Socket>::make_tls_connect(&mut make, &name).map_err(|e| {
            TlsError::Pem {
                path: "upstream.server_name".into(),
                message: format!("{name:?}: {e}"),
            }
        })?;
    let pc = pg_config(config, database, ssl);
    let login = async {
        let (client, conn) = pc
            .connect_raw(socket(config).await?, tls_connect)
            .await
            .map_err(|e| login_err(config, e))?;
        tokio::spawn(drive(conn));
        Ok(client)
    };
    within_connect_timeout(config, login).await
}

async fn within_connect_timeout(
    config: &Config,
    login: impl std::future::Future<Output = Result<Client, CatalogError>>,
) -> Result<Client, CatalogError> {
    tokio::time::timeout(config.catalog.connect_timeout.0, login)
        .await
        .map_err(|_| CatalogError::ConnectTimeout(config.upstream.address.clone()))?
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "catalog service connection ended");
    }
}

/// Temporary schemas belong to other sessions and come and go with them;
/// loading them would change the catalog version on every temp table.
const NOT_TEMP: &str = "n.nspname !~ '^pg_(toast_)?temp_'";

const RELKINDS: &str = "c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')";

fn schemas_sql() -> String {
    format!("SELECT n.oid, n.nspname::text FROM pg_catalog.pg_namespace n WHERE {NOT_TEMP}")
}

fn relations_sql() -> String {
    format!(
        // System views (pg_catalog, information_schema) hold no user data
        // and are analysed as tables: skipping their definitions keeps a
        // reload cheap (pg_get_viewdef deparses every view it is asked for).
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind,
                CASE WHEN c.relkind IN ('v', 'm')
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     THEN pg_catalog.pg_get_viewdef(c.oid) END,
                CASE WHEN c.relkind IN ('r', 'p') THEN
                  (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.n)
                   FROM pg_catalog.pg_index i,
                        unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n),
                        pg_catalog.pg_attribute a
                   WHERE i.indrelid = c.oid AND i.indisprimary
                     AND a.attrelid = c.oid AND a.attnum = k.attnum) END,
                c.relrowsecurity
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE {RELKINDS} AND {NOT_TEMP}"
    )
}

fn columns_sql() -> String {
    format!(
        "SELECT a.attrelid, a.attname::text, a.attnum, a.atttypid,
                pg_catalog.format_type(a.atttypid, a.atttypmod)
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE a.attnum > 0 AND NOT a.attisdropped AND {RELKINDS} AND {NOT_TEMP}
         ORDER BY a.attrelid, a.attnum"
    )
}

fn functions_sql() -> String {
    format!(
        "SELECT p.oid, n.nspname::text, p.proname::text, l.lanname::text, p.prosecdef, p.proretset
         FROM pg_catalog.pg_proc p
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         JOIN pg_catalog.pg_language l ON l.oid = p.prolang
         WHERE {NOT_TEMP}
         ORDER BY p.oid"
    )
}

const ROLES_SQL: &str = "SELECT r.oid, r.rolname::text, r.rolsuper FROM pg_catalog.pg_roles r";

/// Membership edges with whether each passes on privileges and SET ROLE.
/// PostgreSQL 16 stores both per grant (`inherit_option`, `set_option`);
/// up to 15 a member inherits through all its grants iff it has
/// `rolinherit`, and SET ROLE follows every grant. `to_jsonb` reads the
/// 16+ columns without failing on older servers. The second part is the
/// database owner's implicit membership in `pg_database_owner` (14+), which
/// 16 always inherits and 15 only with `rolinherit`.
const MEMBERSHIPS_SQL: &str = "
    SELECT m.member, m.roleid,
           COALESCE((pg_catalog.to_jsonb(m) ->> 'inherit_option')::boolean, r.rolinherit),
           COALESCE((pg_catalog.to_jsonb(m) ->> 'set_option')::boolean, true)
    FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles r ON r.oid = m.member
    UNION ALL
    SELECT d.datdba, o.oid,
           pg_catalog.current_setting('server_version_num')::int >= 160000 OR r.rolinherit,
           true
    FROM pg_catalog.pg_database d
    JOIN pg_catalog.pg_roles r ON r.oid = d.datdba
    JOIN pg_catalog.pg_roles o ON o.rolname = 'pg_database_owner'
    WHERE d.datname = pg_catalog.current_database()";

/// Reads the whole catalog of the connected database (version 0): one
/// query per kind of object, pipelined, in one repeatable-read snapshot.
pub async fn load(client: &Client) -> Result<Catalog, CatalogError> {
    let (schemas_q, relations_q, columns_q, functions_q) = (
        schemas_sql(),
        relations_sql(),
        columns_sql(),
        functions_sql(),
    );
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let (schemas, relations, columns, functions, roles, members) = match tokio::try_join!(
        client.query_typed(&schemas_q, &[]),
        client.query_typed(&relations_q, &[]),
        client.query_typed(&columns_q, &[]),
        client.query_typed(&functions_q, &[]),
        client.query_typed(ROLES_SQL, &[]),
        client.query_typed(MEMBERSHIPS_SQL, &[]),
    ) {
        Ok(rows) => rows,
        Err(e) => {
            // Best effort: the caller drops a connection that failed anyway.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    };
    client.batch_execute("COMMIT").await?;

    let mut catalog = Catalog::default();
    for row in schemas {
        catalog.schemas.insert(row.try_get(1)?, row.try_get(0)?);
    }
    let mut columns_of: HashMap<Oid, Vec<Column>> = HashMap::new();
    for row in columns {
        columns_of.entry(row.try_get(0)?).or_default().push(Column {
            name: row.try_get(1)?,
            attnum: row.try_get(2)?,
            type_oid: row.try_get(3)?,
            type_name: row.try_get(4)?,
        });
    }
    for row in relations {
        let oid: Oid = row.try_get(0)?;
        let relkind: i8 = row.try_get(3)?;
        catalog.insert_relation(Relation {
            oid,
            schema: row.try_get(1)?,
            name: row.try_get(2)?,
            kind: RelKind::from_relkind(relkind.to_ne_bytes()[0]),
            columns: columns_of.remove(&oid).unwrap_or_default(),
            view_definition: row.try_get(4)?,
            primary_key: row
                .try_get::<_, Option<Vec<String>>>(5)?
                .unwrap_or_default(),
            row_security: row.try_get(6)?,
        });
    }
    for row in functions {
        catalog.insert_function(Function {
            oid: row.try_get(0)?,
            schema: row.try_get(1)?,
            name: row.try_get(2)?,
            language: row.try_get(3)?,
            security_definer: row.try_get(4)?,
            returns_set: row.try_get(5)?,
        });
    }
    let mut names = Vec::with_capacity(roles.len());
    for row in roles {
        names.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
    }
    let mut edges = Vec::with_capacity(members.len());
    for row in members {
        edges.push(Membership {
            member: row.try_get(0)?,
            role: row.try_get(1)?,
            inherit: row.try_get(2)?,
            set: row.try_get(3)?,
        });
    }
    catalog.roles = resolve_roles(&names, &edges);
    Ok(catalog)
}

/// One `pg_auth_members` grant: `member` is a member of `role`.
#[derive(Debug, Clone, Copy)]
pub struct Membership {
    /// The member.
    pub member: Oid,
    /// The role granted.
    pub role: Oid,
    /// Whether the member has the role's privileges through this grant.
    pub inherit: bool,
    /// Whether the member may SET ROLE to the role through this grant.
    pub set: bool,
}

/// Builds roles with transitive `member_of` (following inheriting grants)
/// and `can_set_role` (following SET-able grants); `roles` is (oid, name,
/// superuser). Grants naming unknown roles are ignored.
pub fn resolve_roles(roles: &[(Oid, String, bool)], edges: &[Membership]) -> HashMap<String, Role> {
    let name_of: HashMap<Oid, &str> = roles.iter().map(|(o, n, _)| (*o, n.as_str())).collect();
    let mut out_edges: HashMap<Oid, Vec<Membership>> = HashMap::new();
    for e in edges {
        out_edges.entry(e.member).or_default().push(*e);
    }
    let reach = |start: Oid, follow: fn(&Membership) -> bool| -> Vec<String> {
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        let mut names = Vec::new();
        while let Some(oid) = queue.pop_front() {
            for e in out_edges.get(&oid).into_iter().flatten() {
                // Membership loops are refused by PostgreSQL, but never trust that.
                if follow(e) && seen.insert(e.role) {
                    queue.push_back(e.role);
                    if let Some(n) = name_of.get(&e.role) {
                        names.push((*n).to_owned());
                    }
                }
            }
        }
        // Sorted so that an unchanged catalog compares equal.
        names.sort_unstable();
        names
    };
    roles
        .iter()
        .map(|(oid, name, superuser)| {
            let role = Role {
                oid: *oid,
                name: name.clone(),
                superuser: *superuser,
                member_of: reach(*oid, |e| e.inherit),
                can_set_role: reach(*oid, |e| e.set),
            };
            (name.clone(), role)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(member: Oid, role: Oid, inherit: bool) -> Membership {
        Membership {
            member,
            role,
            inherit,
            set: true,
        }
    }

    #[test]
    fn catalog_roles_follow_inheritance_like_pg15() {
        // a <- b <- c (inherits); d NOINHERIT member of c; e member of d.
        let roles: Vec<(Oid, String, bool)> = ["a", "b", "c", "d", "e"]
            .iter()
            .zip(1..)
            .map(|(n, o)| (o, (*n).to_owned(), false))
            .collect();
        let edges = [
            edge(2, 1, true),
            edge(3, 2, true),
            edge(4, 3, false),
            edge(5, 4, true),
            edge(1, 3, true), // a loop must not hang
        ];
        let r = resolve_roles(&roles, &edges);
        assert_eq!(r["c"].member_of, ["a", "b"]);
        assert_eq!(r["a"].member_of, ["b", "c"]);
        assert!(r["d"].member_of.is_empty());
        assert_eq!(r["d"].can_set_role, ["a", "b", "c"]);
        assert_eq!(r["e"].member_of, ["d"]);
        assert_eq!(r["e"].can_set_role, ["a", "b", "c", "d"]);
    }
}

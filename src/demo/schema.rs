//! The HR demo database: its schema (`deploy/demo/schema.sql`), roles and
//! loading the synthetic data.

use super::{data, sql, DemoError};
use crate::cluster::Cluster;

/// The demo database's name.
pub const HR_DATABASE: &str = "hr";

/// The demo login roles (password = name) and whom each stands for.
pub const ROLES: &[(&str, &str)] = &[
    ("hr_admin", "HR administrators: everything"),
    ("payroll", "payroll clerks: pay and bank details"),
    ("hr_analyst", "analysts: aggregates, no direct identifiers"),
    ("manager_app", "the managers' app: reports, reviews"),
    (
        "directory_app",
        "the company directory: names, emails, phones",
    ),
];

/// The schema, roles and grants, as in `deploy/demo/schema.sql`.
pub fn schema_sql() -> &'static str {
    include_str!("../../deploy/demo/schema.sql")
}

/// Connects as the `postgres` superuser over the cluster's Unix socket
/// (trusted there) and drives the connection on a background task.
pub async fn connect_superuser(
    cluster: &Cluster,
    dbname: &str,
) -> Result<tokio_postgres::Client, DemoError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(cluster.socket_dir())
        .port(cluster.port)
        .user("postgres")
        .dbname(dbname)
        .application_name("pgwarden-demo");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "demo setup connection ended");
        }
    });
    Ok(client)
}

/// Creates database `name` unless it exists; `client` is a superuser
/// connection to another database (usually `postgres`).
pub async fn create_database(client: &tokio_postgres::Client, name: &str) -> Result<(), DemoError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&name],
        )
        .await?
        .is_some();
    if !exists {
        // CREATE DATABASE takes no parameters, so quote the identifier.
        let ident = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {ident}"))
            .await?;
    }
    Ok(())
}

/// Creates database `hr` unless it exists (see [`create_database`]).
pub async fn create_hr_database(client: &tokio_postgres::Client) -> Result<(), DemoError> {
    create_database(client, HR_DATABASE).await
}

/// Whether the connected database holds a fully loaded demo schema (the load
/// is one transaction, so the tables exist only if it completed).
pub async fn is_loaded(client: &tokio_postgres::Client) -> Result<bool, DemoError> {
    let row = client
        .query_one("SELECT to_regclass('hr.employees') IS NOT NULL", &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// (Re)creates schema `hr` with its tables, view, roles and grants and fills
/// it with `employees` synthetic employees from `seed`, all in one
/// transaction. `client` is a superuser connection to the target database.
pub async fn load_hr(
    client: &tokio_postgres::Client,
    employees: usize,
    seed: u64,
) -> Result<(), DemoError> {
    let data = data::generate(employees, seed);
    client.batch_execute("BEGIN").await?;
    let result = async {
        client.batch_execute(schema_sql()).await?;
        for stmt in sql::insert_statements(&data) {
            client.batch_execute(&stmt).await?;
        }
        client.batch_execute("COMMIT").await
    }
    .await;
    if let Err(e) = result {
        // Best effort: the connection may be gone already.
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e.into());
    }
    // Fresh statistics so the first queries through the proxy plan well.
    client.batch_execute("ANALYZE hr.departments, hr.employees, hr.salaries, hr.performance_reviews, hr.health_records").await?;
    Ok(())
}

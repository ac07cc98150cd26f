//! The catalog service against a real PostgreSQL: what is loaded, how
//! versions move on reload, role memberships and the TLS modes.

mod common;

use common::{hr_database, pg, psql_admin, superuser, Pg, SUPERUSER};
use pgwarden::catalog::{Catalog, Catalogs, RelKind};
use pgwarden::config::{Config, UpstreamTls};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A configuration whose service connection logs in as the test superuser.
fn config(pg: &Pg) -> Config {
    let mut c = common::config_for(pg);
    c.catalog.user = SUPERUSER.0.into();
    c.catalog.password = Some(SUPERUSER.1.into());
    c
}

/// Creates an empty database `name` with one table `public.t (a int)`.
fn small_database(pg: &Pg, name: &str) {
    psql_admin(pg, "postgres", &format!("CREATE DATABASE {name}"));
    psql_admin(pg, name, "CREATE TABLE public.t (a int)");
}

fn column_names(c: &Catalog, schema: &str, rel: &str) -> Vec<String> {
    c.relation_in(schema, rel)
        .unwrap_or_else(|| panic!("{schema}.{rel} missing"))
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

#[tokio::test]
async fn loads_hr_schema_views_and_system_catalogs() {
    let pg = pg();
    hr_database(&pg, "hr_cat", 50).await;

    // Time the bare load separately from connecting.
    let client = pgwarden::catalog::load::connect(&config(&pg), "hr_cat")
        .await
        .expect("service connection");
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        pgwarden::catalog::load(&client).await.expect("load");
        best = best.min(t.elapsed());
    }
    let catalogs = Catalogs::new(&config(&pg));
    let t = Instant::now();
    let c = catalogs.get("hr_cat").await.expect("catalog");
    eprintln!(
        "HR catalog: {} relations, {} functions, {} roles; load {best:?} (best of 5), \
         first get incl. connect {:?}",
        c.relations.len(),
        c.functions
            .values()
            .map(|m| m.values().map(Vec::len).sum::<usize>())
            .sum::<usize>(),
        c.roles.len(),
        t.elapsed()
    );

    let employees = c.relation_in("hr", "employees").expect("hr.employees");
    assert_eq!(employees.kind, RelKind::Table);
    assert_eq!(
        column_names(&c, "hr", "employees"),
        [
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "department_id",
            "manager_id",
            "job_title",
            "hire_date",
            "date_of_birth",
            "ssn",
            "home_address",
            "bank_account"
        ]
    );
    let attnums: Vec<i16> = employees.columns.iter().map(|c| c.attnum).collect();
    assert_eq!(attnums, (1..=13).collect::<Vec<i16>>());
    let ssn = employees.column("ssn").expect("ssn");
    assert_eq!(ssn.type_name, "character(11)");
    assert_eq!(employees.column("id").expect("id").type_name, "integer");
    assert_eq!(employees.column("id").expect("id").type_oid, 23);
    let salaries = c.relation_in("hr", "salaries").expect("hr.salaries");
    assert_eq!(
        salaries.column("amount").expect("amount").type_name,
        "numeric(12,2)"
    );

    let dir = c.relation_in("hr", "employee_directory").expect("view");
    assert_eq!(dir.kind, RelKind::View);
    let def = dir.view_definition.as_deref().expect("view definition");
    assert!(def.contains("employees"), "{def}");
    assert!(employees.view_definition.is_none());

    let pg_class = c.relation_in("pg_catalog", "pg_class").expect("pg_class");
    assert!(pg_class.column("relname").is_some());
    assert!(c.relation_in("information_schema", "tables").is_some());
    assert!(c.schemas.contains_key("hr") && c.schemas.contains_key("pg_catalog"));
    let lower = c.functions_in("pg_catalog", "lower");
    assert!(!lower.is_empty() && lower[0].language == "internal");
    assert!(c.functions_in("pg_catalog", "generate_series")[0].returns_set);
    assert!(c.role("postgres").expect("postgres").superuser);
    assert!(c.role("hr_analyst").is_some());

    // Loaded once, then served from memory with the same version.
    let again = catalogs.get("hr_cat").await.expect("catalog");
    assert!(Arc::ptr_eq(&c, &again));
    assert_eq!(again.version, c.version);
}

#[tokio::test]
async fn role_memberships_honour_noinherit() {
    let pg = pg();
    small_database(&pg, "cat_roles");
    psql_admin(
        &pg,
        "postgres",
        "CREATE ROLE cat_a; CREATE ROLE cat_b IN ROLE cat_a;
         CREATE ROLE cat_c LOGIN IN ROLE cat_b;
         CREATE ROLE cat_n NOINHERIT LOGIN IN ROLE cat_c;
         CREATE ROLE cat_m LOGIN IN ROLE cat_n;",
    );
    let catalogs = Catalogs::new(&config(&pg));
    let c = catalogs.get("cat_roles").await.expect("catalog");
    let role = |n: &str| c.role(n).unwrap_or_else(|| panic!("role {n}"));
    assert!(role("cat_a").member_of.is_empty());
    assert_eq!(role("cat_b").member_of, ["cat_a"]);
    assert_eq!(role("cat_c").member_of, ["cat_a", "cat_b"]);
    // NOINHERIT: a member for SET ROLE, without the privileges.
    assert!(role("cat_n").member_of.is_empty());
    assert_eq!(role("cat_n").can_set_role, ["cat_a", "cat_b", "cat_c"]);
    // Inheritance stops at the NOINHERIT role.
    assert_eq!(role("cat_m").member_of, ["cat_n"]);
    assert_eq!(
        role("cat_m").can_set_role,
        ["cat_a", "cat_b", "cat_c", "cat_n"]
    );
    assert!(c.role_is("cat_c", "cat_a") && !c.role_is("cat_n", "cat_a"));
    assert!(!role("cat_c").superuser);
    // The database owner (postgres) is implicitly pg_database_owner.
    assert!(c.role_is("postgres", "pg_database_owner"));
}

#[tokio::test]
async fn reload_after_ddl_bumps_version_and_unchanged_keeps_it() {
    let pg = pg();
    small_database(&pg, "cat_reload");
    let catalogs = Catalogs::new(&config(&pg));
    let v1 = catalogs.get("cat_reload").await.expect("catalog");
    assert_eq!(column_names(&v1, "public", "t"), ["a"]);

    let same = catalogs.reload_now("cat_reload").await.expect("reload");
    assert_eq!(same.version, v1.version, "nothing changed");

    psql_admin(&pg, "cat_reload", "ALTER TABLE public.t ADD COLUMN b text");
    let v2 = catalogs.reload_now("cat_reload").await.expect("reload");
    assert!(v2.version > v1.version);
    assert_eq!(column_names(&v2, "public", "t"), ["a", "b"]);
    assert_eq!(
        v2.relation_in("public", "t").unwrap().columns[1].type_name,
        "text"
    );
    assert!(Arc::ptr_eq(&v2, &catalogs.current("cat_reload").unwrap()));

    // A dropped column disappears; attnums keep their gap.
    psql_admin(
        &pg,
        "cat_reload",
        "ALTER TABLE public.t DROP COLUMN a; CREATE VIEW public.v AS SELECT b FROM public.t",
    );
    let v3 = catalogs.reload_now("cat_reload").await.expect("reload");
    assert!(v3.version > v2.version);
    let t = v3.relation_in("public", "t").unwrap();
    assert_eq!((t.columns.len(), t.columns[0].attnum), (1, 2));
    assert!(v3
        .relation_in("public", "v")
        .unwrap()
        .view_definition
        .is_some());
}

#[tokio::test]
async fn request_reload_picks_up_changes_in_background() {
    let pg = pg();
    small_database(&pg, "cat_request");
    let catalogs = Catalogs::new(&config(&pg));
    let v1 = catalogs.get("cat_request").await.expect("catalog");
    assert!(catalogs.current("other_db").is_none());
    catalogs.request_reload("other_db"); // never loaded: ignored

    psql_admin(&pg, "cat_request", "CREATE TABLE public.added (x int)");
    // A burst of requests coalesces into one or two reloads.
    for _ in 0..100 {
        catalogs.request_reload("cat_request");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let v2 = loop {
        let c = catalogs.current("cat_request").expect("loaded");
        if c.relation_in("public", "added").is_some() {
            break c;
        }
        assert!(Instant::now() < deadline, "reload did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(v2.version > v1.version);
    // Let any second coalesced reload finish: it finds nothing new.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(catalogs.current("cat_request").unwrap().version, v2.version);

    catalogs.shutdown();
    assert!(catalogs.current("cat_request").is_some());
    assert!(catalogs.reload_now("cat_request").await.is_err());
}

#[tokio::test]
async fn concurrent_first_gets_load_once() {
    let pg = pg();
    small_database(&pg, "cat_concurrent");
    let catalogs = Catalogs::new(&config(&pg));
    let gets = (0..8).map(|_| {
        let c = catalogs.clone();
        tokio::spawn(async move { c.get("cat_concurrent").await.expect("catalog") })
    });
    let mut snapshots = Vec::new();
    for g in gets {
        snapshots.push(g.await.expect("task"));
    }
    // One load for all of them (versions are global, so no fixed number).
    assert!(snapshots.iter().all(|s| Arc::ptr_eq(s, &snapshots[0])));
}

#[tokio::test]
async fn periodic_refresh_and_reconnect_after_termination() {
    let pg = pg();
    small_database(&pg, "cat_periodic");
    let mut cfg = config(&pg);
    cfg.catalog.refresh_interval = pgwarden::config::HumanDuration::from_secs(1);
    let catalogs = Catalogs::new(&cfg);
    let v1 = catalogs.get("cat_periodic").await.expect("catalog");
    // Kill the service connection: the next reload reconnects.
    psql_admin(
        &pg,
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'pgwarden-catalog' AND datname = 'cat_periodic'",
    );
    psql_admin(&pg, "cat_periodic", "CREATE TABLE public.later (x int)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = catalogs.current("cat_periodic").expect("loaded");
        if c.relation_in("public", "later").is_some() {
            assert!(c.version > v1.version);
            break;
        }
        assert!(Instant::now() < deadline, "periodic refresh did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Dropping the Catalogs stops the task and closes its connection.
    drop(catalogs);
    let admin = superuser(&pg, "postgres").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'pgwarden-catalog' AND datname = 'cat_periodic'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "service connection left open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn service_connection_tls_modes() {
    let pg = pg();
    let ca = pg.dir.join("catalog-test-ca.pem");
    std::fs::write(&ca, &pg.ca_pem).expect("write CA");
    for (mode, ssl) in [
        (UpstreamTls::Disable, false),
        (UpstreamTls::Prefer, true),
        (UpstreamTls::Require, true),
        (UpstreamTls::VerifyFull, true),
    ] {
        let mut cfg = config(&pg);
        cfg.upstream.tls = mode;
        if mode == UpstreamTls::VerifyFull {
            cfg.upstream.ca_file = Some(ca.clone());
        }
        let client = pgwarden::catalog::load::connect(&cfg, "postgres")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let used: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_ssl")
            .get(0);
        assert_eq!(used, ssl, "{mode:?}");
    }
    // verify-full against the wrong CA fails instead of falling back.
    let mut cfg = config(&pg);
    cfg.upstream.tls = UpstreamTls::VerifyFull;
    let (other_ca, _, _) = common::ca_signed();
    let wrong = pg.dir.join("catalog-test-wrong-ca.pem");
    std::fs::write(&wrong, other_ca).expect("write CA");
    cfg.upstream.ca_file = Some(wrong);
    assert!(pgwarden::catalog::load::connect(&cfg, "postgres")
        .await
        .is_err());
    // A wrong password is reported, not retried forever.
    let mut cfg = config(&pg);
    cfg.catalog.password = Some("wrong".into());
    let catalogs = Catalogs::new(&cfg);
    let e = catalogs.get("postgres").await.unwrap_err();
    assert!(e.to_string().contains("password"), "{e}");
    assert!(catalogs.current("postgres").is_none());
}

//! `pgwarden demo` end to end: a new cluster with the HR data, the proxy in
//! front of it, the demo roles and grants, Ctrl-C stopping both, and reuse.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start_demo(
    dir: &std::path::Path,
    port: u16,
    pg_port: u16,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgwarden"))
        .args(["demo", "--employees", "150"])
        .args([
            "--port",
            &port.to_string(),
            "--pg-port",
            &pg_port.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = l.contains(needle);
            seen.push(l);
            if hit {
                return seen;
            }
        }
    }
    panic!(
        "demo never printed {needle:?}; output so far:\n{}",
        seen.join("\n")
    );
}

fn psql(port: u16, user: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-At", "-c", sql])
        .arg(format!("postgresql://{user}:{user}@127.0.0.1:{port}/hr"))
        .output()
        .unwrap()
}

fn interrupt_and_wait(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn demo_serves_hr_data_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("demo");
    let (port, pg_port) = (common::free_port(), common::free_port());

    let (child, rx) = start_demo(&dir, port, pg_port);
    let banner = wait_for_line(&rx, "psql").join("\n");
    assert!(banner.contains(&format!("127.0.0.1:{port}/hr")), "{banner}");
    std::thread::sleep(Duration::from_millis(300));

    let out = psql(port, "hr_analyst", "SELECT count(*) FROM hr.employees");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "150",
        "{out:?}"
    );
    let out = psql(
        port,
        "directory_app",
        "SELECT count(*) FROM hr.employee_directory",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "150",
        "{out:?}"
    );
    // SSN-shaped values are always in the never-issued 9xx range.
    let out = psql(
        port,
        "hr_admin",
        "SELECT count(*) FROM hr.employees WHERE ssn NOT LIKE '9%'",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");
    // The database's own grants are coarse but not empty.
    let out = psql(
        port,
        "directory_app",
        "UPDATE hr.salaries SET amount = amount",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    let out = psql(
        port,
        "payroll",
        "UPDATE hr.salaries SET amount = amount WHERE employee_id = 1",
    );
    assert!(out.status.success(), "{out:?}");
    interrupt_and_wait(child);
    assert!(
        !dir.join("postmaster.pid").exists(),
        "PostgreSQL left running"
    );

    // A second run reuses the data.
    let (child, rx) = start_demo(&dir, port, pg_port);
    let lines = wait_for_line(&rx, "psql").join("\n");
    assert!(lines.contains("Reusing"), "{lines}");
    std::thread::sleep(Duration::from_millis(300));
    let out = psql(port, "hr_analyst", "SELECT count(*) FROM hr.salaries");
    assert!(out.status.success(), "{out:?}");
    interrupt_and_wait(child);
    assert!(!dir.join("postmaster.pid").exists());
}

//! The PostgreSQL test harness (`support/postgres.rs`) itself: a private cluster starts, runs
//! SQL, keeps its data across a stop and a start on the same port, and goes away when dropped.
//!
//! Without PostgreSQL installed the test prints a note and passes, unless
//! `P2P_REQUIRE_POSTGRES=1`: then it fails.

#[path = "support/postgres.rs"]
mod postgres;

use std::net::{Ipv4Addr, TcpStream};

use postgres::PgCluster;

#[test]
fn cluster_keeps_its_data_across_a_restart() {
    let Some(pg) = PgCluster::start("cluster_keeps_its_data_across_a_restart") else {
        return;
    };
    let port = pg.port();
    assert_ne!(port, 0);
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );

    pg.psql("CREATE TABLE kept (id integer PRIMARY KEY, name text NOT NULL);");
    pg.psql("INSERT INTO kept VALUES (1, 'alice'), (2, 'bob');");
    assert_eq!(
        pg.psql("SELECT id, name FROM kept ORDER BY id;"),
        "1|alice\n2|bob\n"
    );

    pg.stop();
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "the server still accepts connections after stop()"
    );

    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT name FROM kept WHERE id = 2;"), "bob\n");
    assert_eq!(pg.psql("SHOW listen_addresses;"), "127.0.0.1\n");
}

#[test]
fn psql_failure_panics_with_its_stderr() {
    let Some(pg) = PgCluster::start("psql_failure_panics_with_its_stderr") else {
        return;
    };
    let panic = std::panic::catch_unwind(|| pg.psql("SELECT * FROM no_such_table;"))
        .expect_err("psql on a missing table fails");
    let message = panic
        .downcast_ref::<String>()
        .expect("the panic message is a String");
    assert!(
        message.contains("no_such_table"),
        "the panic does not quote psql's stderr: {message}"
    );
}

#[test]
fn dropping_the_cluster_stops_the_server_and_removes_its_files() {
    let Some(pg) = PgCluster::start("dropping_the_cluster_stops_the_server_and_removes_its_files")
    else {
        return;
    };
    let port = pg.port();
    let data_dir = pg.psql("SHOW data_directory;");
    let data_dir = std::path::PathBuf::from(data_dir.trim());
    assert!(
        data_dir.is_dir(),
        "{} is not a directory",
        data_dir.display()
    );
    drop(pg);
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "the server still accepts connections after drop"
    );
    assert!(!data_dir.exists(), "{} was not removed", data_dir.display());
}

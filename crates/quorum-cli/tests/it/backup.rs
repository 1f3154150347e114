//! `quorum backup` while raters are answering, then `quorum restore` into a new database: every
//! answer stored before the backup began is in it, and the restored instance serves it.

use std::collections::HashSet;
use std::process::{Command, Output};

use reqwest::Client;

use crate::serve::{exported, raters_under_way, serve, setup};

fn quorum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(args)
        .output()
        .unwrap()
}

/// Backs `database` up into `file` under load, restores it into `restored`, and checks the
/// restored instance against what the server had stored before the backup began.
async fn backup_under_load_and_restore(database: &str, file: &std::path::Path, restored: &str) {
    let mut server = serve(database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &server.base, database, &admin, 300, 6, 2).await;
    let (tasks, _) = raters_under_way(&client, &server.base, project, &tokens, 60).await;
    // Every answer the server has stored by now was acknowledged before the backup began.
    let before: HashSet<_> = exported(&client, &server.base, &admin, project)
        .await
        .into_iter()
        .collect();
    let file_arg = file.to_str().unwrap();
    let backup = quorum(&["backup", "--database", database, "--output", file_arg]);
    assert!(backup.status.success(), "{backup:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is its owner's alone: {mode:o}");
    }
    let mut acknowledged = HashSet::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 600, "the load ran to the end");
    // A backup never overwrites a file.
    let again = quorum(&["backup", "--database", database, "--output", file_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let restore = quorum(&["restore", "--input", file_arg, "--database", restored]);
    assert!(restore.status.success(), "{restore:?}");
    let report = String::from_utf8_lossy(&restore.stdout);
    assert!(report.contains("  items: 300\n"), "{report}");
    // Into a database that holds something: refused.
    let twice = quorum(&["restore", "--input", file_arg, "--database", restored]);
    assert!(!twice.status.success());

    let mut served = serve(restored, "unused");
    let back: Vec<_> = exported(&client, &served.base, &admin, project).await;
    let back_set: HashSet<_> = back.iter().cloned().collect();
    assert_eq!(back.len(), back_set.len(), "no answer twice");
    assert!(
        before.is_subset(&back_set),
        "{} answers stored before the backup are missing",
        before.difference(&back_set).count()
    );
    let counted = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("responses: "))
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(counted, back.len(), "{report}");
    assert!(back.len() <= acknowledged.len());
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_backup_taken_under_load_restores_every_stored_answer() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let restored = format!("sqlite://{}/restored/q.sqlite3", dir.path().display());
    let file = dir.path().join("backup.sqlite3");
    backup_under_load_and_restore(&database, &file, &restored).await;
    // Not a backup at all: refused by name.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let other = format!("sqlite://{}/other.sqlite3", dir.path().display());
    let refused = quorum(&[
        "restore",
        "--input",
        junk.to_str().unwrap(),
        "--database",
        &other,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a Quorum backup"));
    assert!(!std::path::Path::new(&other["sqlite://".len()..]).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_backup_taken_under_load_restores_every_stored_answer() {
    let source = crate::postgres::FreshDatabase::new("quorum_backup_from").await;
    let target = crate::postgres::FreshDatabase::new("quorum_backup_into").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.pgdump");
    backup_under_load_and_restore(&source.url, &file, &target.url).await;
    // A SQLite target for a PostgreSQL dump: refused, saying why.
    let wrong = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let refused = quorum(&[
        "restore",
        "--input",
        file.to_str().unwrap(),
        "--database",
        &wrong,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is a PostgreSQL dump"));
    // A backup that fails (no such database) says why and leaves no file behind.
    let missing = format!("{}_gone", &source.url);
    let failed_file = dir.path().join("failed.pgdump");
    let failed = quorum(&[
        "backup",
        "--database",
        &missing,
        "--output",
        failed_file.to_str().unwrap(),
    ]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("pg_dump failed"));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with("failed"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    source.drop().await;
    target.drop().await;
}

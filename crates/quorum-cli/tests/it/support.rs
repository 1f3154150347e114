use std::path::{Path, PathBuf};
use std::process::Output;

pub fn quorum(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(args)
        .output()
        .expect("the quorum binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The shared data sets (`../shared/datasets` beside the repository, or `QUORUM_DATASETS`);
/// `None`, with a note on stderr, when they are not on this machine.
pub fn datasets() -> Option<PathBuf> {
    let path = std::env::var_os("QUORUM_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"));
    if path.join("crowd").is_dir() {
        Some(path)
    } else {
        skip(&format!("shared datasets not found at {}", path.display()));
        None
    }
}

/// Says why a test skips — or, under CI (`CI` set), fails: there every prerequisite must be
/// present, so a missing one is a broken run, not a pass.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("CI is set, so this test may not skip: {why}");
    }
    eprintln!("skipping: {why}");
}

/// Reads a two-column-or-more CSV into (first column → column `name`).
pub fn column(path: &Path, key: &str, name: &str) -> std::collections::HashMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let k = headers.iter().position(|h| h == key).unwrap();
    let v = headers.iter().position(|h| h == name).unwrap();
    reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[k].to_string(), r[v].to_string()))
        .collect()
}

pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

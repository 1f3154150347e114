//! The Python client (`clients/python`) installed with pip into a virtual environment and its
//! own tests run against a real `quorum serve`: the client's code path is the one users run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::serve_env;

/// The client's virtual environment, kept between runs under the user's cache; a setuptools
/// that builds wheels itself (so installing the client fetches no build environment) and the
/// readers the tests use — pandas, polars, pyarrow, DuckDB, Hugging Face datasets — are
/// installed into it once (tests that need one skip themselves without it).
fn environment() -> Option<PathBuf> {
    let python = Command::new("python3").arg("--version").output();
    if python.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is needed for the Python client's tests"
        );
        eprintln!("skipped: python3 is not installed");
        return None;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let venv = Path::new(&home).join(".cache/quorum-venvs/python-client");
    if !venv.join("bin/python").exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv works");
    }
    let python = venv.join("bin/python");
    let complete = Command::new(&python)
        .args([
            "-c",
            "import setuptools.command.bdist_wheel, pandas, polars, pyarrow, duckdb, datasets",
        ])
        .status()
        .unwrap()
        .success();
    if !complete {
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--upgrade"])
            .args([
                "setuptools>=70.1",
                "pandas",
                "polars",
                "pyarrow",
                "duckdb",
                "datasets",
            ])
            .status()
            .unwrap();
        if !installed.success() {
            eprintln!(
                "note: setuptools, pandas and polars could not be installed (no package registry?)"
            );
        }
    }
    Some(venv)
}

/// Copies a source tree (files and folders; build output and bytecode caches left out).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text == "__pycache__" || text == "build" || text.ends_with(".egg-info") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_installs_and_passes_its_tests_against_a_real_server() {
    let Some(venv) = environment() else {
        return;
    };
    let python = venv.join("bin/python");
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python");
    // Installed as a user would, from a copy: building writes `build/` and `*.egg-info` next
    // to the sources, which stay clean.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&client, copy.path());
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(copy.path())
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "pip install ./clients/python: {}",
        String::from_utf8_lossy(&installed.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let allow = [("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")];
    let served = serve_env(&database, "administrator", &[], &allow);
    let token = served.token.clone().unwrap();
    // Run from elsewhere, so the installed package is imported, not the source tree.
    let run = Command::new(&python)
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(copy.path().join("tests"))
        .current_dir(dir.path())
        .env("QUORUM_URL", &served.base)
        .env("QUORUM_TOKEN", &token)
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{report}");
    assert!(report.contains("Ran 6 tests"), "{report}");
    let where_from = Command::new(&python)
        .args(["-c", "import quorum_client; print(quorum_client.__file__)"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let location = String::from_utf8_lossy(&where_from.stdout);
    assert!(location.contains("site-packages"), "{location}");
    let readers = Command::new(&python)
        .args(["-c", "import pandas, polars, pyarrow, duckdb, datasets"])
        .status()
        .unwrap()
        .success();
    if readers {
        assert!(!report.contains("skipped"), "{report}");
        // Every export Parquet holds, read by every reader.
        for file in ["responses", "consensus", "dpo", "sft"] {
            assert!(
                report.contains(&format!(
                    "{file}.parquet read by: pyarrow, polars, duckdb, datasets"
                )),
                "{file}: {report}"
            );
        }
    }
}

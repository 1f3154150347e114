//! `quorum import` and `quorum export` against a database a running server shares: all or
//! nothing in, the same rows out as the API serves.

use std::process::Command;

use reqwest::Client;

use crate::serve::{project_stats, rater_loop, serve, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_is_all_or_nothing_and_export_streams_what_the_api_stored() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &server.base, &database, &admin, 0, 1, 1).await;
    let project_arg = project.to_string();
    // `quorum import|export --project P --database D ARGS…`
    let quorum = |command: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args([command, "--project", &project_arg, "--database", &database])
            .args(args)
            .output()
            .unwrap()
    };

    let bad = dir.path().join("items.jsonl");
    std::fs::write(
        &bad,
        "{\"fields\": {\"text\": \"fine\"}}\n\n{\"fields\": {\"txt\": \"typo\"}}\n",
    )
    .unwrap();
    let output = quorum("import", &[bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("items.jsonl:3: fields.txt: the schema has no such field"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 rows were rejected; nothing was imported"),
        "{stderr}"
    );
    let stats = project_stats(&client, &server.base, &admin, project).await;
    assert_eq!(stats["items"], 0);

    let good = dir.path().join("items.csv");
    std::fs::write(
        &good,
        "external_id,text\nc1,\"first, with a comma\"\nc2,second\n",
    )
    .unwrap();
    let output = quorum("import", &[good.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 created, 0 updated"));

    let answered = rater_loop(
        client.clone(),
        vec![server.base.clone()],
        project,
        tokens[0].clone(),
    )
    .await;
    assert_eq!(answered.len(), 2);
    let out = dir.path().join("export.csv");
    let output = quorum(
        "export",
        &["--format", "csv", "--output", out.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "response_id,item_id,external_id,user,answers,time_spent_ms,created_at"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains(",c1,rater0,\"{\"\"label\"\":\"\"a\"\"}\",0,"),
        "{text}"
    );
    let refused = quorum("export", &["--as", "rater0"]);
    assert!(!refused.status.success());
    // The consensus export: the CLI writes what the API serves.
    let consensus = quorum("export", &["--format", "consensus"]);
    assert!(
        consensus.status.success(),
        "{}",
        String::from_utf8_lossy(&consensus.stderr)
    );
    let from_cli = String::from_utf8_lossy(&consensus.stdout).to_string();
    let from_api = client
        .get(format!(
            "{}/api/v1/projects/{project}/export?format=consensus",
            server.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(from_cli, from_api);
    assert_eq!(from_cli.lines().count(), 2, "{from_cli}");
    // And as Parquet: the same file from both.
    let as_parquet = quorum("export", &["--format", "consensus", "--file", "parquet"]);
    assert!(as_parquet.status.success());
    let from_api = client
        .get(format!(
            "{}/api/v1/projects/{project}/export?format=consensus&file=parquet",
            server.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(as_parquet.stdout.starts_with(b"PAR1"));
    assert_eq!(as_parquet.stdout, from_api.to_vec());
    // A label project has no preference pairs: refused, and no file is left behind.
    let pairs = dir.path().join("pairs.parquet");
    let refused = quorum(
        "export",
        &[
            "--format",
            "dpo",
            "--file",
            "parquet",
            "--output",
            pairs.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no pairwise question"),
        "{refused:?}"
    );
    assert!(!pairs.exists());
    // Parquet to a file, with a dataset card next to it naming that file; a bad licence
    // writes neither.
    let folder = dir.path().join("dataset");
    std::fs::create_dir(&folder).unwrap();
    let output = folder.join("responses.parquet");
    let output_arg = output.display().to_string();
    let export_args = |license: &'static str| {
        [
            "--format",
            "parquet",
            "--output",
            output_arg.as_str(),
            "--card",
            "--license",
            license,
        ]
    };
    let refused = quorum("export", &export_args("no licence"));
    assert!(!refused.status.success());
    assert!(!output.exists() && !folder.join("README.md").exists());
    let carded = quorum("export", &export_args("cc-by-4.0"));
    assert!(
        carded.status.success(),
        "{}",
        String::from_utf8_lossy(&carded.stderr)
    );
    assert_eq!(&std::fs::read(&output).unwrap()[..4], b"PAR1");
    let card = std::fs::read_to_string(folder.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: cc-by-4.0\n"), "{card}");
    assert!(card.contains("data_files: \"responses.parquet\""), "{card}");
    // A responses file is not items: importing it (Parquet, told by its extension) names the
    // column that no item import reads (a timestamp), and writes nothing.
    let wrong = quorum("import", &[&output_arg]);
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("Parquet column `created_at` is Timestamp"),
        "{said}"
    );
    let unknown = quorum("export", &["--format", "xml"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("unknown format `xml`; use jsonl, csv, parquet, dpo, sft, consensus"),
        "{said}"
    );
    let child = &mut server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

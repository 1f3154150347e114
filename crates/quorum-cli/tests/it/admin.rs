//! `quorum admin`: the account lifecycle from the command line, on a real SQLite file.

use crate::support::{quorum, stderr, stdout};

#[test]
fn accounts_are_listed_disabled_enabled_and_their_tokens_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("q.sqlite3").display());
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database", database.as_str()]);
        quorum(&all)
    };
    let made = run(&["admin", "create-user", "ann", "--password", "password123"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let token = run(&["admin", "create-token", "ann", "--label", "ci"]);
    assert!(stdout(&token).starts_with("qrm_"));
    let listed = run(&["admin", "list-tokens", "ann"]);
    let listed = stdout(&listed);
    assert!(
        listed.starts_with("id,name,session,created_at,expires_at,last_used_at\n"),
        "{listed}"
    );
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert!(listed.contains(",ci,false,"), "{listed}");
    let revoked = run(&["admin", "revoke-token", "ann", &id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(
        stdout(&run(&["admin", "list-tokens", "ann"]))
            .lines()
            .count(),
        1
    );
    let again = run(&["admin", "revoke-token", "ann", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("has no token"),
        "{}",
        stderr(&again)
    );

    let disabled = run(&["admin", "disable-user", "ann"]);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    let users = stdout(&run(&["admin", "list-users"]));
    let ann = users.lines().find(|l| l.contains(",ann,")).unwrap();
    assert!(
        !ann.ends_with(','),
        "a disabled account shows when: {users}"
    );
    run(&["admin", "enable-user", "ann"]);
    let users = stdout(&run(&["admin", "list-users"]));
    assert!(
        users
            .lines()
            .find(|l| l.contains(",ann,"))
            .unwrap()
            .ends_with(','),
        "{users}"
    );
    let short = run(&["admin", "set-password", "ann", "--password", "short"]);
    assert!(!short.status.success());
    let set = run(&[
        "admin",
        "set-password",
        "ann",
        "--password",
        "a-longer-password",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(!run(&["admin", "disable-user", "nobody"]).status.success());
}

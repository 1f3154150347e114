//! The web app in a real headless Chromium (Debian's `chromium` driven through
//! `chromedriver`), against `quorum serve` on a loopback port with a fresh database.
//! `scripts/test.sh` installs both packages; without `chromedriver` these tests say so and skip.
//! Screenshots land in `target/browser-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::serve::{Served, call, serve};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() {
        crate::support::skip(&format!(
            "{CHROMEDRIVER} is not installed (scripts/test.sh installs it)"
        ));
        return None;
    }
    // A free port is released before chromedriver binds it, so another process may take it
    // first: chromedriver then exits, or something else answers. Only a chromedriver that
    // answers its own /status counts; otherwise try another port.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if chromedriver_answers(port) {
                let url = format!("http://127.0.0.1:{port}");
                return Some(Driver { child, url });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("chromedriver did not start");
}

/// Whether a chromedriver answers `GET /status` on this port.
fn chromedriver_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&reply).contains("ChromeDriver")
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut capabilities = serde_json::Map::new();
    let mut options = json!({
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 format!("--window-size={width},{height}")]
    });
    // Narrow viewports are emulated (a desktop window cannot be made 360 px wide).
    if width < 500 {
        options["mobileEmulation"] =
            json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
    }
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Presses keys one after another on whatever has focus (as a person at a keyboard would).
async fn press(client: &Client, keys: &[char]) {
    let mut actions = KeyActions::new("keyboard".into());
    for &key in keys {
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    client.perform_actions(actions).await.unwrap();
}

async fn sign_in(client: &Client, base: &str, name: &str, password: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
}

/// Waits until `#item` shows something other than `previous`; returns its text.
async fn next_item(client: &Client, previous: &str) -> String {
    for _ in 0..200 {
        if let Ok(item) = client.find(Locator::Css("#item")).await {
            let text = item.text().await.unwrap_or_default();
            if !text.is_empty() && text != previous {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the next item never appeared (still `{previous}`)");
}

async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    for _ in 0..200 {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            let text = element.text().await.unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("`{css}` never showed `{needle}`");
}

async fn create_user(server: &Served, name: &str) {
    let (status, body) = call(
        &reqwest::Client::new(),
        server.token.as_deref().unwrap(),
        Method::POST,
        format!("{}/api/v1/users", server.base),
        Some(json!({"name": name, "password": "rater-password"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A label project (`text` field, one label question) with one item per text (external ids
/// `t0`…) and the named users, created with the rater password, as annotators; returns the
/// project and the users' ids.
async fn label_project(
    server: &Served,
    name: &str,
    options: &[&str],
    overlap: i32,
    texts: &[String],
    raters: &[&str],
) -> (i64, Vec<i64>) {
    let (base, token) = (&server.base, server.token.as_deref().unwrap());
    let client = reqwest::Client::new();
    let schema = json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": options, "required": true}]
    });
    let (status, body) = call(
        &client,
        token,
        Method::POST,
        format!("{base}/api/v1/projects"),
        Some(json!({"name": name, "schema": schema, "overlap": overlap})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let project = body["project"]["id"].as_i64().unwrap();
    let lines: String = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            format!(
                "{}\n",
                json!({"external_id": format!("t{i}"), "fields": {"text": text}})
            )
        })
        .collect();
    let imported = client
        .post(format!("{base}/api/v1/projects/{project}/items"))
        .bearer_auth(token)
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    let mut ids = Vec::new();
    for rater in raters {
        create_user(server, rater).await;
        let (status, body) = call(
            &client,
            token,
            Method::POST,
            format!("{base}/api/v1/projects/{project}/members"),
            Some(json!({"user": rater, "role": "annotator"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["member"]["user_id"].as_i64().unwrap());
    }
    (project, ids)
}

async fn exported(server: &Served, project: &str) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!(
            "{}/api/v1/projects/{project}/export?format=jsonl",
            server.base
        ))
        .bearer_auth(server.token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A manager creates a pairwise project from the template, imports a JSON Lines file and adds
/// a rater; the rater answers 10 items with the keyboard alone and skips one; the database
/// holds exactly those answers. A script payload in an item is shown as text and runs nothing;
/// a rater gets 403 on the dashboard; the API refuses a cookie request without the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_sets_up_a_pairwise_project_and_a_rater_answers_by_keyboard() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &format!("sqlite://{}/q.sqlite3", dir.path().display()),
        "manager-password",
    );
    let base = server.base.clone();
    create_user(&server, "rita").await;
    let items = dir.path().join("items.jsonl");
    let mut lines = String::new();
    for i in 0..12 {
        let prompt = if i == 0 {
            "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"> what now?"
                .to_string()
        } else {
            format!("prompt {i}: which is kinder?")
        };
        lines.push_str(&format!(
            "{}\n",
            json!({
                "external_id": format!("p{i}"),
                "fields": {
                    "prompt": [{"role": "user", "content": prompt}],
                    "responses": [{"name": "A", "content": format!("answer A{i}")}, {"name": "B", "content": format!("answer B{i}")}]
                },
                "metadata": {"locale": if i % 2 == 0 { "ar-QA" } else { "en-GB" }}
            })
        ));
    }
    std::fs::write(&items, lines).unwrap();

    // The manager.
    let manager = browser(&driver, 1280, 720).await;
    sign_in(&manager, &base, "admin", "manager-password").await;
    manager.goto(&format!("{base}/projects/new")).await.unwrap();
    let form = manager.find(Locator::Css("#create")).await.unwrap();
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("Kindness")
        .await
        .unwrap();
    form.find(Locator::Css("select[name=template]"))
        .await
        .unwrap()
        .select_by_value("pairwise")
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    manager
        .wait()
        .for_element(Locator::Css("#manage"))
        .await
        .unwrap();
    let url = manager.current_url().await.unwrap();
    let project = url.path().rsplit('/').next().unwrap().to_string();
    manager
        .find(Locator::Css("#import-file"))
        .await
        .unwrap()
        .send_keys(items.to_str().unwrap())
        .await
        .unwrap();
    manager
        .find(Locator::Css("#import"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&manager, "#import-result", "12 created").await;
    let member = manager.find(Locator::Css("#member")).await.unwrap();
    member
        .find(Locator::Css("input[name=user]"))
        .await
        .unwrap()
        .send_keys("rita")
        .await
        .unwrap();
    member
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&manager, "#member-result", "rita is now annotator").await;

    // The rater, keyboard only.
    let rater = browser(&driver, 1280, 720).await;
    sign_in(&rater, &base, "rita", "rater-password").await;
    rater
        .goto(&format!("{base}/projects/{project}/work"))
        .await
        .unwrap();
    let mut expected = std::collections::HashMap::new();
    let mut shown = String::new();
    let mut skipped = None;
    for n in 0..11 {
        shown = next_item(&rater, &shown).await;
        let index: usize = shown
            .split("answer A")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|d| d.parse().ok())
            .expect("the item shows its answers");
        if n == 0 {
            screenshot(&rater, "workspace").await;
        }
        if n == 3 {
            press(&rater, &['s']).await;
            skipped = Some(index);
            continue;
        }
        let (key, verdict) = match n % 3 {
            0 => ('a', "a"),
            1 => ('b', "b"),
            _ => ('t', "tie"),
        };
        press(&rater, &[key, Key::Enter.into()]).await;
        expected.insert(format!("p{index}"), verdict);
    }
    assert_eq!(expected.len(), 10);
    // The payload item was shown as text, and nothing in it ran.
    let pwned = rater
        .execute("return window.pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true), "a script in an item ran");

    // The rater is not allowed on the dashboard; the API wants the CSRF token with the cookie.
    rater
        .goto(&format!("{base}/projects/{project}"))
        .await
        .unwrap();
    let page = rater.source().await.unwrap();
    assert!(page.contains("Not allowed"), "{page}");
    let status = rater
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/projects/' + arguments[0] + '/next', {method: 'POST'})
               .then(r => done(r.status));",
            vec![json!(project)],
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        json!(403),
        "a cookie request without the CSRF token"
    );

    // Exactly those answers are stored.
    let rows = exported(&server, &project).await;
    assert_eq!(rows.len(), 10, "{rows:?}");
    for row in &rows {
        let id = row["external_id"].as_str().unwrap();
        assert_eq!(
            row["answers"]["preference"],
            json!(expected[id]),
            "item {id}"
        );
        assert_ne!(Some(id.to_string()), skipped.map(|i| format!("p{i}")));
        assert!(row["time_spent_ms"].as_i64().unwrap() >= 0);
    }

    manager
        .goto(&format!("{base}/projects/{project}"))
        .await
        .unwrap();
    wait_for_text(&manager, ".raters", "rita").await;
    screenshot(&manager, "dashboard").await;
    rater.close().await.unwrap();
    manager.close().await.unwrap();
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// Two raters in two browser sessions on a classification project with overlap 2: each sees
/// each item once, and the dashboard shows 100% complete. Also at phone width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_raters_fill_an_overlap_of_two_and_the_dashboard_shows_it_complete() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &format!("sqlite://{}/q.sqlite3", dir.path().display()),
        "manager-password",
    );
    let base = server.base.clone();
    let texts: Vec<String> = (0..5).map(|i| format!("مرحبا text {i}")).collect();
    let (project, _) = label_project(
        &server,
        "Sentiment",
        &["positive", "negative", "neutral"],
        2,
        &texts,
        &["ann", "bob"],
    )
    .await;
    let ann = browser(&driver, 1280, 720).await;
    let bob = browser(&driver, 360, 740).await;
    sign_in(&ann, &base, "ann", "rater-password").await;
    sign_in(&bob, &base, "bob", "rater-password").await;
    for rater in [&ann, &bob] {
        rater
            .goto(&format!("{base}/projects/{project}/work"))
            .await
            .unwrap();
    }
    let mut seen: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let mut last = [String::new(), String::new()];
    for round in 0..5 {
        for (r, rater) in [&ann, &bob].into_iter().enumerate() {
            last[r] = next_item(rater, &last[r]).await;
            seen[r].push(last[r].clone());
            if round == 0 && r == 1 {
                screenshot(rater, "workspace-phone").await;
            }
            press(rater, &['1', Key::Enter.into()]).await;
        }
    }
    for r in 0..2 {
        wait_for_text([&ann, &bob][r], "#item", "All done").await;
        let form_shown = [&ann, &bob][r]
            .execute(
                "return document.getElementById('answers').offsetParent !== null",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            form_shown,
            json!(false),
            "no questions are left on screen when all is done"
        );
        let mut distinct = seen[r].clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            5,
            "rater {r} saw an item twice: {:?}",
            seen[r]
        );
    }
    let manager = browser(&driver, 1280, 720).await;
    sign_in(&manager, &base, "admin", "manager-password").await;
    manager
        .goto(&format!("{base}/projects/{project}"))
        .await
        .unwrap();
    let text = wait_for_text(&manager, ".cards", "100%").await;
    assert!(text.contains("10"), "{text}");
    for c in [ann, bob, manager] {
        c.close().await.unwrap();
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// The quality loop in the browser: a manager saves rules through the dashboard form; a rater
/// who answers too fast is paused and the workspace says why; the manager reinstates them from
/// the dashboard and the audit log shows both; a reviewer rejects a response on the review page
/// and it leaves the consensus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_rater_is_paused_reinstated_and_reviewed() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &format!("sqlite://{}/q.sqlite3", dir.path().display()),
        "manager-password",
    );
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let token = server.token.clone().unwrap();
    let texts: Vec<String> = (0..14).map(|i| format!("text {i}")).collect();
    let (project, ids) = label_project(
        &server,
        "Checked",
        &["positive", "negative"],
        2,
        &texts,
        &["ann", "bob"],
    )
    .await;
    let bob_id = ids[1];

    // The manager sets a minimum median time of a minute and a review of disagreements.
    let manager = browser(&driver, 1280, 900).await;
    sign_in(&manager, &base, "admin", "manager-password").await;
    let dashboard = format!("{base}/projects/{project}");
    manager.goto(&dashboard).await.unwrap();
    manager
        .find(Locator::Css("input[name=p_seconds]"))
        .await
        .unwrap()
        .send_keys("60")
        .await
        .unwrap();
    manager
        .find(Locator::Css("input[name=r_disagreement]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    manager
        .find(Locator::Css("#quality button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&manager, "#quality-result", "Saved").await;
    let (_, body) = call(
        &client,
        &token,
        Method::GET,
        format!("{base}/api/v1/projects/{project}"),
        None,
    )
    .await;
    assert_eq!(
        body["project"]["quality"]["pause"]["min_median_ms"], 60000,
        "{body}"
    );
    assert_eq!(body["project"]["quality"]["review"]["disagreement"], true);

    // Ann answers "positive" as fast as she can: after ten answers she is paused and told why.
    let ann = browser(&driver, 1280, 720).await;
    sign_in(&ann, &base, "ann", "rater-password").await;
    ann.goto(&format!("{base}/projects/{project}/work"))
        .await
        .unwrap();
    let mut last = String::new();
    for _ in 0..10 {
        last = next_item(&ann, &last).await;
        press(&ann, &['1', Key::Enter.into()]).await;
    }
    let told = wait_for_text(&ann, "#item", "No more items").await;
    assert!(told.contains("median time"), "{told}");
    screenshot(&ann, "workspace-paused").await;

    // Bob answers "negative" over the API, so every item Ann answered is disputed.
    let (_, body) = call(
        &client,
        &token,
        Method::POST,
        format!("{base}/api/v1/users/{bob_id}/tokens"),
        None,
    )
    .await;
    let bob = body["token"].as_str().unwrap().to_string();
    loop {
        let (status, body) = call(
            &client,
            &bob,
            Method::POST,
            format!("{base}/api/v1/projects/{project}/next"),
            None,
        )
        .await;
        if status != StatusCode::OK {
            break;
        }
        let lease = body["lease"]["id"].as_i64().unwrap();
        call(
            &client,
            &bob,
            Method::POST,
            format!("{base}/api/v1/leases/{lease}/response"),
            Some(json!({"answers": {"label": "negative"}, "time_spent_ms": 90000})),
        )
        .await;
    }

    // The manager sees the pause, reinstates Ann, and the log shows both changes.
    manager.goto(&dashboard).await.unwrap();
    wait_for_text(&manager, "table.raters", "paused: median time").await;
    manager
        .find(Locator::Css("button.standing[data-action=reinstate]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let log = wait_for_text(&manager, "body", "reinstated by a manager").await;
    assert!(log.contains("Audit log") && log.contains("paused"), "{log}");
    screenshot(&manager, "dashboard-quality").await;

    // The manager reviews the first disputed item: Ann's answer is rejected.
    manager
        .goto(&format!("{base}/projects/{project}/review"))
        .await
        .unwrap();
    wait_for_text(&manager, "#review-status", "disagreement").await;
    let rows = manager
        .find_all(Locator::Css("#review-item tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let item_before = wait_for_text(&manager, "#review-status", "Item").await;
    for row in rows {
        if row.text().await.unwrap().starts_with("ann") {
            row.find(Locator::Css("input[value=reject]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    }
    screenshot(&manager, "review").await;
    manager
        .find(Locator::Css("#review-item button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The next disputed item comes up; the first one's consensus is Bob's alone.
    let mut moved_on = false;
    for _ in 0..200 {
        let now = manager
            .find(Locator::Css("#review-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if now != item_before {
            moved_on = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        moved_on,
        "the review queue never moved past `{item_before}`"
    );
    let (_, body) = call(
        &client,
        &token,
        Method::GET,
        format!("{base}/api/v1/projects/{project}/consensus"),
        None,
    )
    .await;
    // Items t0–t9 had both answers; the reviewed one (t0, the oldest) keeps Bob's alone.
    let counts: Vec<(&str, i64)> = body["consensus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["external_id"].as_str().unwrap(),
                c["responses"].as_i64().unwrap(),
            )
        })
        .filter(|(id, _)| id.len() == 2)
        .collect();
    assert_eq!(counts[0], ("t0", 1), "{body}");
    assert!(counts[1..].iter().all(|(_, n)| *n == 2), "{body}");
    for c in [ann, manager] {
        c.close().await.unwrap();
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// `quorum standard`: the public-service example is run against two models on a loopback
/// provider and rated by raters of both locales; `report` refuses until then, naming what is
/// missing; the signed report verifies, fails once tampered with, compares equal with itself,
/// and its HTML twin opens in Chromium (screenshot `standard-report`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_is_run_reported_verified_and_its_report_opens_in_chromium() {
    use quorum_app::{AddMember, App, Caller, SubmitAnswers, SystemClock};
    use quorum_store::{Accounts, ModelSpec, Store};

    async fn completions(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        let model = body["model"].as_str().unwrap_or_default();
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let content = if model == "judge" {
            if prompt.find("careful") < prompt.find("hasty") {
                "[[A]]"
            } else {
                "[[B]]"
            }
            .to_string()
        } else {
            format!("{model}: an answer")
        };
        axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
    }
    let router =
        axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/standards/public-service-assistant.toml");
    let quorum = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(args)
            // The models answer on loopback, with the operator's leave.
            .env("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")
            .output()
            .unwrap()
    };
    let standard = quorum_app::standard::load(&file).unwrap();
    {
        let store = quorum_store_sqlite::SqliteStore::open(&database)
            .await
            .unwrap();
        let app = App::new(std::sync::Arc::new(store), std::sync::Arc::new(SystemClock))
            .with_egress(quorum_app::llm::Egress::permissive());
        let (admin, _) = app.bootstrap_admin(None).await.unwrap().unwrap();
        let admin = Caller { user: admin };
        for name in ["careful", "hasty", "judge"] {
            let model = ModelSpec {
                name: name.into(),
                base_url: Some(provider.clone()),
                model_id: None,
                api_key_env: None,
                parameters: json!({"temperature": 0}),
                created_at: 0,
            };
            app.register_model(&admin, model).await.unwrap();
        }
        app.store().close().await;
    }
    let ran = quorum(&[
        "standard",
        "run",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--models",
        "careful,hasty",
    ]);
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(said.contains(&standard.hash), "{said}");
    let project: i64 = said
        .split("battles in project ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let out = dir.path().join("report");
    let out_arg = out.to_str().unwrap();
    let refused = quorum(&[
        "standard",
        "report",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--out",
        out_arg,
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("requirements are not met") && said.contains("ar-QA: 0 of the 2"),
        "{said}"
    );

    {
        let store = quorum_store_sqlite::SqliteStore::open(&database)
            .await
            .unwrap();
        let app = App::new(std::sync::Arc::new(store), std::sync::Arc::new(SystemClock))
            .with_egress(quorum_app::llm::Egress::permissive());
        let admin = Caller {
            user: app.store().user_by_name("admin").await.unwrap().unwrap(),
        };
        for (name, locale) in [
            ("qa1", "ar-QA"),
            ("qa2", "ar-QA"),
            ("gb1", "en-GB"),
            ("gb2", "en-GB"),
        ] {
            let user = app
                .create_user_unchecked(name, "password123", false)
                .await
                .unwrap();
            let member = AddMember {
                user: name.into(),
                role: quorum_core::Role::Annotator,
                locales: vec![locale.into()],
                skills: vec![],
            };
            app.add_member(&admin, project, member).await.unwrap();
            let rater = Caller { user };
            let mut n = 0;
            while let Some(assignment) = app.next(&rater, project).await.unwrap() {
                let item = serde_json::to_value(&assignment.item).unwrap();
                let first = item["fields"]["responses"][0]["content"].as_str().unwrap();
                let careful = if first.starts_with("careful") {
                    "a"
                } else {
                    "b"
                };
                let other = if careful == "a" { "b" } else { "a" };
                n += 1;
                // Most raters prefer the careful answer; gb2 sometimes does not.
                let helpful = if name == "gb2" && n % 3 == 0 {
                    other
                } else {
                    careful
                };
                let answers = json!({"helpfulness": helpful, "cultural_appropriateness": careful, "harmful": "neither"});
                let body = SubmitAnswers {
                    answers: answers.as_object().unwrap().clone(),
                    time_spent_ms: 4000,
                };
                app.submit(&rater, assignment.lease.id, body, None)
                    .await
                    .unwrap();
            }
        }
        app.store().close().await;
    }
    let made = quorum(&[
        "standard",
        "report",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--out",
        out_arg,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let report = out.join("report.json");
    let verified = quorum(&[
        "standard",
        "verify",
        report.to_str().unwrap(),
        "--standard",
        file.to_str().unwrap(),
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let compared = quorum(&[
        "standard",
        "compare",
        report.to_str().unwrap(),
        report.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&compared.stdout).contains("the boards are equal"));
    // One number changed by hand: the signature no longer matches.
    let text = std::fs::read_to_string(&report).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["report"]["human_ratings"] = json!(999);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string(&json).unwrap()).unwrap();
    let rejected = quorum(&["standard", "verify", tampered.to_str().unwrap()]);
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("signature"));

    let Some(driver) = driver() else { return };
    let client = browser(&driver, 1280, 1000).await;
    client
        .goto(&format!("file://{}", out.join("report.html").display()))
        .await
        .unwrap();
    let hash = client
        .wait()
        .for_element(Locator::Css("#standard-hash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hash, standard.hash);
    let boards = client
        .find_all(Locator::Css("figure.board svg"))
        .await
        .unwrap();
    assert!(boards.len() >= 2, "the overall board and per-slice boards");
    screenshot(&client, "standard-report").await;
    client.close().await.unwrap();
}

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
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn driver() -> Option<Driver> {
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
pub(crate) fn chromedriver_answers(port: u16) -> bool {
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

pub(crate) async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
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

pub(crate) fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Presses keys one after another on whatever has focus (as a person at a keyboard would).
pub(crate) async fn press(client: &Client, keys: &[char]) {
    let mut actions = KeyActions::new("keyboard".into());
    for &key in keys {
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    client.perform_actions(actions).await.unwrap();
}

pub(crate) async fn sign_in(client: &Client, base: &str, name: &str, password: &str) {
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
pub(crate) async fn next_item(client: &Client, previous: &str) -> String {
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

pub(crate) async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
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

pub(crate) async fn create_user(server: &Served, name: &str) {
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
pub(crate) async fn label_project(
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

pub(crate) async fn exported(server: &Served, project: &str) -> Vec<Value> {
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
pub(crate) async fn manager_sets_up_a_pairwise_project_and_a_rater_answers_by_keyboard() {
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
pub(crate) async fn two_raters_fill_an_overlap_of_two_and_the_dashboard_shows_it_complete() {
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

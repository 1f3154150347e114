//! Quorum behind the TLS reverse proxies of the operations guide: `docs/proxy/nginx.conf` and
//! `docs/proxy/Caddyfile`, run for real by Debian's nginx and Caddy (`scripts/test.sh` installs
//! both) with only their names, ports and certificate paths replaced. Through each: HTTP is
//! redirected to HTTPS, Quorum's security headers and `Secure` cookies come through, the
//! client's own address reaches Quorum (the sign-in limiter locks one client out and not
//! another), a 30 MB import passes, and an export comes back whole.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::postgres::free_port;
use crate::serve::{Served, serve_with, sign_in};

/// A proxy process, killed when dropped.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn guide_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/proxy")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn installed(program: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).exists());
    if !found {
        crate::support::skip(&format!(
            "{program} is not installed (scripts/test.sh installs it)"
        ));
    }
    found
}

fn replace(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "the guide's file no longer has {from:?}"
        );
        text = text.replace(from, to);
    }
    text
}

/// Quorum as the guide runs it, behind a proxy on `https_port`.
fn quorum(dir: &Path, https_port: u16) -> Served {
    serve_with(
        &format!("sqlite://{}/q.sqlite3", dir.display()),
        "administrator",
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--public-url",
            &format!("https://localhost:{https_port}"),
        ],
    )
}

fn upstream(served: &Served) -> String {
    served.base.trim_start_matches("http://").to_string()
}

/// A client of the proxy from `local` (another loopback address stands for another machine),
/// trusting `root`.
fn client(local: [u8; 4], root: &Path, https_port: u16) -> Client {
    let root = reqwest::Certificate::from_pem(&std::fs::read(root).unwrap()).unwrap();
    Client::builder()
        .local_address(std::net::IpAddr::from(local))
        .add_root_certificate(root)
        .resolve("localhost", ([127, 0, 0, 1], https_port).into())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits until something answers on the port.
async fn listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {port}");
}

/// Everything a deployment needs from its proxy, checked through it.
async fn through_the_proxy(served: &Served, root: &Path, http_port: u16, https_port: u16) {
    let base = format!("https://localhost:{https_port}");
    let here = client([127, 0, 0, 2], root, https_port);
    let elsewhere = client([127, 0, 0, 3], root, https_port);

    // Plain HTTP is sent to HTTPS.
    let plain = here
        .get(format!("http://127.0.0.1:{http_port}/login"))
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_redirection(), "{}", plain.status());
    assert!(
        plain.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://")
    );

    // Quorum's own headers come through.
    let health = here.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("strict-transport-security"));
    assert!(health.headers().contains_key("content-security-policy"));

    // The client's address reaches Quorum: failures from one client lock that client out of
    // the name, not a client elsewhere.
    for _ in 0..6 {
        let (status, _) = sign_in(&here, &base, "admin", "wrong password").await;
        assert!(!status.is_redirection(), "{status}");
    }
    let (status, _) = sign_in(&here, &base, "admin", "administrator").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, cookie) = sign_in(&elsewhere, &base, "admin", "administrator").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // A 30 MB import goes through, and its export comes back whole.
    let token = served.token.clone().unwrap();
    let schema = json!({"fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["a", "b"]}]});
    let created: Value = elsewhere
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "through a proxy", "schema": schema}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = created["project"]["id"].as_i64().unwrap();
    let padding = "x".repeat(1000);
    let lines: String = (0..30_000)
        .map(|i| {
            format!("{{\"external_id\": \"{i}\", \"fields\": {{\"text\": \"{i} {padding}\"}}}}\n")
        })
        .collect();
    assert!(lines.len() > 30_000_000);
    let imported = elsewhere
        .post(format!("{base}/api/v1/projects/{project}/items"))
        .bearer_auth(&token)
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    assert_eq!(imported.json::<Value>().await.unwrap()["created"], 30_000);
    let stats = crate::serve::project_stats(&elsewhere, &base, &token, project).await;
    assert_eq!(stats["items"], 30_000);
}

/// A certificate authority and a certificate for localhost signed by it: (root, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let [ca_key, ca, key, request, cert, extensions] = [
        "ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem", "ext.cnf",
    ]
    .map(|f| dir.join(f));
    std::fs::write(&extensions, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&str]| {
        let done = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(done.success(), "openssl {args:?}");
    };
    let p = |path: &PathBuf| path.to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Quorum test CA",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p(&key),
        "-out",
        &p(&request),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&request),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p(&extensions),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_quorum_with_everything_it_needs() {
    if !installed("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let served = quorum(dir.path(), https_port);
    let (root, cert, key) = certificates(dir.path());
    let site = replace(
        &guide_file("nginx.conf"),
        &[
            (
                "server 127.0.0.1:8080;",
                &format!("server {};", upstream(&served)),
            ),
            ("listen 80;", &format!("listen 127.0.0.1:{http_port};")),
            (
                "listen 443 ssl http2;",
                &format!("listen 127.0.0.1:{https_port} ssl http2;"),
            ),
            ("quorum.example.org", "localhost"),
            ("/etc/ssl/quorum/fullchain.pem", cert.to_str().unwrap()),
            ("/etc/ssl/quorum/privkey.pem", key.to_str().unwrap()),
        ],
    );
    std::fs::write(dir.path().join("quorum.conf"), site).unwrap();
    // What /etc/nginx/nginx.conf gives a site on a real machine, with everything in `dir`.
    let d = dir.path().display();
    let main = format!(
        "daemon off; master_process off; user root; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{}}
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
                 fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
                 include {d}/quorum.conf; }}"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let nginx = Command::new("nginx")
        .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = Proxy(nginx);
    listening(https_port).await;
    through_the_proxy(&served, &root, http_port, https_port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_serves_quorum_with_everything_it_needs() {
    if !installed("caddy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let served = quorum(dir.path(), https_port);
    let d = dir.path().display();
    // `localhost` gets a certificate from Caddy's own authority; the global options keep
    // Caddy's ports, state and trust store to this test.
    let site = replace(
        &guide_file("Caddyfile"),
        &[
            (
                "reverse_proxy 127.0.0.1:8080",
                &format!("reverse_proxy {}", upstream(&served)),
            ),
            (
                "quorum.example.org {",
                &format!("localhost:{https_port} {{"),
            ),
        ],
    );
    let global = format!(
        "{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n\tskip_install_trust\n\tstorage file_system {d}/caddy\n}}\n\n"
    );
    std::fs::write(dir.path().join("Caddyfile"), global + &site).unwrap();
    let caddy = Command::new("caddy")
        .args([
            "run",
            "--adapter",
            "caddyfile",
            "--config",
            &format!("{d}/Caddyfile"),
        ])
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _caddy = Proxy(caddy);
    listening(https_port).await;
    let root = dir.path().join("caddy/pki/authorities/local/root.crt");
    for _ in 0..100 {
        if root.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    through_the_proxy(&served, &root, http_port, https_port).await;
}

use std::sync::Arc;

use quorum_app::{App, SystemClock};
use quorum_store_sqlite::SqliteStore;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// A server on a loopback port with a fresh database and an administrator.
pub struct Server {
    pub base: String,
    pub admin_token: String,
    pub app: App<SqliteStore>,
    pub client: Client,
    _runner: quorum_app::jobs::JobRunner,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(quorum_server::HttpSettings::default()).await
    }

    /// A server with these HTTP settings.
    pub async fn start_with(settings: quorum_server::HttpSettings) -> Server {
        Self::start_configured(settings, quorum_app::jobs::RunnerSettings::default()).await
    }

    /// A server with these HTTP settings and job runner (and webhook sender) settings.
    pub async fn start_configured(
        settings: quorum_server::HttpSettings,
        runner: quorum_app::jobs::RunnerSettings,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.sqlite3").to_str().unwrap())
            .await
            .unwrap();
        // The operator allows models on loopback and keys in `HOME` (set on every machine).
        let egress = quorum_app::evaluation::llm::Egress {
            key_variables: vec!["HOME".into()],
            allow_private: true,
        };
        // Gold is mixed in by the same draws every run, so rate assertions are not flaky.
        let app = App::new(Arc::new(store), Arc::new(SystemClock))
            .with_egress(egress)
            .with_draw_seed(0x601d);
        let (admin, _) = app
            .bootstrap_admin(Some("administrator".into()))
            .await
            .unwrap()
            .unwrap();
        let admin_token = app.create_token_for(&admin, "test").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = quorum_server::router_with(app.clone(), settings);
        tokio::spawn(async move { axum_serve(listener, router).await });
        let runner = app.start_job_runner(runner);
        Server {
            base,
            admin_token,
            app,
            client: Client::new(),
            _runner: runner,
            _dir: dir,
        }
    }

    /// A new user with the given role in `project` (locales optional); returns their token.
    pub async fn rater(&self, name: &str, project: i64, role: &str, locales: &[&str]) -> String {
        let user = self
            .app
            .create_user_unchecked(name, "password123", false)
            .await
            .unwrap();
        let (status, body) = self
            .call(
                &self.admin_token,
                Method::POST,
                &format!("/api/v1/projects/{project}/members"),
                Some(json!({"user": name, "role": role, "locales": locales})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.app.create_token_for(&user, "test").await.unwrap()
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The rater answers every item they are given with `answers(assignment)`, each answer
    /// acknowledged with 201; returns how many they answered.
    pub async fn answer_all(
        &self,
        token: &str,
        project: i64,
        mut answers: impl FnMut(&Value) -> Value,
    ) -> usize {
        let mut answered = 0;
        loop {
            let (status, body) = self
                .call(
                    token,
                    Method::POST,
                    &format!("/api/v1/projects/{project}/next"),
                    None,
                )
                .await;
            if status == StatusCode::NO_CONTENT {
                return answered;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            let lease = body["lease"]["id"].as_i64().unwrap();
            let answers = answers(&body);
            let (status, reply) = self
                .call(
                    token,
                    Method::POST,
                    &format!("/api/v1/leases/{lease}/response"),
                    Some(json!({"answers": answers})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{reply}");
            answered += 1;
        }
    }

    pub async fn project(&self, schema: Value, overlap: i32) -> i64 {
        let (status, body) = self
            .call(
                &self.admin_token,
                Method::POST,
                "/api/v1/projects",
                Some(json!({"name": "test", "schema": schema, "overlap": overlap})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["project"]["id"].as_i64().unwrap()
    }

    /// A project's export in `format`, as the administrator, as text.
    pub async fn export(&self, project: i64, format: &str) -> String {
        self.client
            .get(format!(
                "{}/api/v1/projects/{project}/export?format={format}",
                self.base
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn import(&self, project: i64, body: &str) -> (StatusCode, Value) {
        self.import_as(project, "application/x-ndjson", body).await
    }

    /// Posts an import body with the given content type.
    pub async fn import_as(
        &self,
        project: i64,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/projects/{project}/items", self.base))
            .bearer_auth(&self.admin_token)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let forever = std::future::pending::<()>();
    quorum_server::serve(
        listener,
        router,
        quorum_server::Timeouts::default(),
        forever,
    )
    .await
    .unwrap();
}

pub fn label_schema() -> Value {
    json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["pos", "neg"], "required": true}]
    })
}

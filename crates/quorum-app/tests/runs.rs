//! Model runs and LLM judges against small OpenAI-compatible servers on loopback: one that
//! misbehaves on purpose (429 with Retry-After, 500s, a reply slower than the timeout,
//! malformed JSON, a 400) and judges that are fair, position-biased or never give a verdict.
//! The production client, run and judge code are what is tested.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use quorum_app::evaluation::llm::{Egress, RetryPolicy};
use quorum_app::evaluation::runs::RunRequest;
use quorum_app::jobs::RunnerSettings;
use quorum_app::{App, Caller, CreateProject, ImportFormat, SystemClock};
use quorum_store::{Evaluation, JobState, ModelSpec, Projects};
use quorum_store_sqlite::SqliteStore;

/// The key comes from an environment variable every test machine has, so the production
/// lookup is what runs (tests may not set variables: the workspace forbids `unsafe`).
const KEY_VARIABLE: &str = "HOME";

/// The operator's permission for these tests: models on loopback, the key in `HOME`.
fn test_egress() -> Egress {
    Egress {
        key_variables: vec![KEY_VARIABLE.into()],
        allow_private: true,
    }
}

fn key() -> String {
    std::env::var(KEY_VARIABLE).unwrap()
}

/// Requests seen, per (model, prompt text), with when they arrived.
type Seen = Arc<Mutex<HashMap<(String, String), Vec<Instant>>>>;

async fn completions(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let prompt = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let count = {
        let mut seen = seen.lock().unwrap();
        let times = seen.entry((model.clone(), prompt.clone())).or_default();
        times.push(Instant::now());
        times.len()
    };
    let expected = format!("Bearer {}", key());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "no key").into_response();
    }
    assert_eq!(body["temperature"], 0.0, "generation parameters are sent");
    let ok = || {
        Json(json!({
            "choices": [{"message": {"role": "assistant", "content": format!("{model} says: {prompt}")}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9}
        }))
        .into_response()
    };
    match (model.as_str(), count) {
        ("steady", _) => ok(),
        ("throttled", 1) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        ("flaky", 1 | 2) => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        ("slow", 1) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok()
        }
        ("sleepy", _) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok()
        }
        ("garbled", 1) => (StatusCode::OK, "{\"choices\": [{\"mess").into_response(),
        ("down", _) => (StatusCode::BAD_GATEWAY, "down").into_response(),
        ("refused", _) => (StatusCode::BAD_REQUEST, "unknown parameter").into_response(),
        _ => ok(),
    }
}

async fn fake_provider() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, seen)
}

/// A project of `n` prompts (`q0`…, external ids `p0`…) owned by the administrator.
async fn prompt_project(app: &App<SqliteStore>, caller: &Caller, n: usize) -> i64 {
    let project = app
        .create_project(
            caller,
            CreateProject {
                name: "prompts".into(),
                instructions: String::new(),
                schema: json!({
                    "fields": [{"name": "question", "kind": "text"}],
                    "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]
                }),
                overlap: 1,
                lease_seconds: 60,
                locale_policy: Default::default(),
                min_overlap: None,
                target_confidence: None,
                quality: Default::default(),
            },
        )
        .await
        .unwrap();
    let lines: String = (0..n)
        .map(|i| format!("{{\"external_id\": \"p{i}\", \"fields\": {{\"question\": \"q{i}\"}}}}\n"))
        .collect();
    let outcome = app
        .import(caller, project.id, ImportFormat::Json, &lines)
        .await
        .unwrap();
    assert_eq!(outcome.created as usize, n);
    project.id
}

async fn app_with_prompts() -> (App<SqliteStore>, Caller, i64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.sqlite3").to_str().unwrap())
        .await
        .unwrap();
    let app = App::new(Arc::new(store), Arc::new(SystemClock)).with_egress(test_egress());
    let (admin, _) = app
        .bootstrap_admin(Some("administrator".into()))
        .await
        .unwrap()
        .unwrap();
    let caller = Caller { user: admin };
    let project = prompt_project(&app, &caller, 3).await;
    (app, caller, project, dir)
}

fn model(name: &str, base: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        base_url: Some(base.into()),
        model_id: None,
        api_key_env: Some(KEY_VARIABLE.into()),
        parameters: json!({"temperature": 0.0}),
        created_at: 0,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(50),
        max_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_retry_what_is_transient_record_what_fails_and_resume() {
    let (base, seen) = fake_provider().await;
    let (app, caller, project, _dir) = app_with_prompts().await;
    let names = [
        "steady",
        "throttled",
        "flaky",
        "slow",
        "garbled",
        "down",
        "refused",
    ];
    for name in names {
        app.register_model(&caller, model(name, &base))
            .await
            .unwrap();
    }
    let calls = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&calls);
    let on_answer = move |_: &str| *counter.lock().unwrap() += 1;
    let request = RunRequest {
        models: names.iter().map(|n| n.to_string()).collect(),
        concurrency: 2,
        policy: policy(),
    };
    let progress = app
        .run_models(&caller, project, request.clone(), &on_answer)
        .await
        .unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        21,
        "one progress tick per prompt and model"
    );
    let of = |name: &str| progress.iter().find(|p| p.model == name).unwrap().clone();
    for name in ["steady", "throttled", "flaky", "slow", "garbled"] {
        assert_eq!(
            (of(name).answered, of(name).failed),
            (3, 0),
            "{name}: {progress:?}"
        );
    }
    assert_eq!((of("down").answered, of("down").failed), (0, 3));
    assert_eq!((of("refused").answered, of("refused").failed), (0, 3));

    let requests = |model: &str, prompt: &str| {
        seen.lock().unwrap()[&(model.to_string(), prompt.to_string())].clone()
    };
    // Retry-After: 1 was honoured (not the 50 ms backoff).
    let throttled = requests("throttled", "q0");
    assert_eq!(throttled.len(), 2);
    assert!(throttled[1] - throttled[0] >= Duration::from_millis(950));
    assert_eq!(requests("flaky", "q1").len(), 3, "two 500s, then success");
    assert_eq!(
        requests("down", "q2").len(),
        4,
        "gave up after max_attempts"
    );
    assert_eq!(requests("refused", "q2").len(), 1, "a 400 is not retried");
    assert_eq!(requests("slow", "q0").len(), 2, "the slow reply timed out");

    let generations = app.store().generations(project).await.unwrap();
    let flaky = generations.iter().find(|g| g.model == "flaky").unwrap();
    assert_eq!(flaky.attempts, 3);
    assert_eq!(
        (flaky.prompt_tokens, flaky.completion_tokens),
        (Some(5), Some(9))
    );
    assert!(
        flaky
            .output
            .as_deref()
            .unwrap()
            .starts_with("flaky says: q")
    );
    let down = generations.iter().find(|g| g.model == "down").unwrap();
    assert!(
        down.error.as_deref().unwrap().contains("HTTP 502"),
        "{down:?}"
    );
    let refused = generations.iter().find(|g| g.model == "refused").unwrap();
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains("unknown parameter")
    );
    assert!(
        !format!("{generations:?}").contains(&key()),
        "the key is never stored"
    );

    // Resuming calls only what has no answer: the failed prompts of `down` and `refused`.
    let before: usize = seen.lock().unwrap().values().map(Vec::len).sum();
    let progress = app
        .run_models(&caller, project, request, &|_| {})
        .await
        .unwrap();
    let after: usize = seen.lock().unwrap().values().map(Vec::len).sum();
    assert_eq!(
        after - before,
        3 * 4 + 3,
        "down: 3 prompts × 4 attempts; refused: 3 × 1"
    );
    assert_eq!(progress.iter().map(|p| p.calls).sum::<usize>(), 6);
}

#[tokio::test]
async fn a_missing_key_or_endpoint_is_refused_before_any_call() {
    let (base, seen) = fake_provider().await;
    let (app, caller, project, _dir) = app_with_prompts().await;
    let mut keyless = model("keyless", &base);
    keyless.api_key_env = Some("QUORUM_KEY_TEST_NO_SUCH_VARIABLE".into());
    app.register_model(&caller, keyless).await.unwrap();
    let mut imported = model("imported", &base);
    imported.base_url = None;
    app.register_model(&caller, imported).await.unwrap();
    for name in ["keyless", "imported", "unknown"] {
        let request = RunRequest {
            models: vec![name.into()],
            concurrency: 1,
            policy: policy(),
        };
        let error = app
            .run_models(&caller, project, request, &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(error, quorum_app::AppError::Invalid { .. }),
            "{name}: {error}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
    let mut bad = model("bad", &base);
    bad.api_key_env = Some("sk-live-1234".into());
    let error = app.register_model(&caller, bad).await.unwrap_err();
    assert!(error.to_string().contains("not the key"), "{error}");
}

/// A judge provider: `fair` prefers the answer that says "good" whichever side it is on,
/// `lazy` always says the first answer, `rambling` never gives a verdict token.
async fn judge_provider() -> String {
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        post(|Json(body): Json<Value>| async move {
            let model = body["model"].as_str().unwrap_or_default().to_string();
            let text = body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let first_is_good = text
                .split("[The start of assistant A's answer]")
                .nth(1)
                .is_some_and(|rest| rest.trim_start().starts_with("good"));
            let reply = match model.as_str() {
                "fair" if first_is_good => "A is clearly better. [[A]]",
                "fair" => "B is better. [[B]]",
                "lazy" => "[[A]]",
                _ => "Both have merits; it depends.",
            };
            Json(json!({"choices": [{"message": {"content": reply}}]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judges_answer_both_orders_and_are_measured_against_humans() {
    use quorum_app::evaluation::judges::JudgeRequest;
    use quorum_app::evaluation::{BuildBattles, Sampling};
    let base = judge_provider().await;
    let (app, caller, prompts, _dir) = app_with_prompts().await;
    let lines: String = (0..3)
        .flat_map(|i| {
            [
                format!("{{\"prompt_id\": \"p{i}\", \"model\": \"m-good\", \"response\": \"good {i}\"}}\n"),
                format!("{{\"prompt_id\": \"p{i}\", \"model\": \"m-poor\", \"response\": \"poor {i}\"}}\n"),
            ]
        })
        .collect();
    let outcome = app
        .import_generations(&caller, prompts, &lines)
        .await
        .unwrap();
    assert_eq!(outcome.stored, 6);
    let arena = app
        .build_battles(
            &caller,
            prompts,
            BuildBattles {
                name: "arena".into(),
                models: vec![],
                sampling: Sampling::AllPairs,
                seed: 1,
                overlap: 1,
                locale_policy: Default::default(),
                questions: None,
            },
        )
        .await
        .unwrap();
    // One human votes on every battle, for the good answer.
    let rater = caller.clone();
    while let Some(assignment) = app.next(&rater, arena.id).await.unwrap() {
        let item = serde_json::to_value(&assignment.item).unwrap();
        let a = item["fields"]["responses"][0]["content"].as_str().unwrap();
        let verdict = if a.starts_with("good") { "a" } else { "b" };
        app.submit(
            &rater,
            assignment.lease.id,
            quorum_app::SubmitAnswers {
                answers: json!({"preference": verdict}).as_object().unwrap().clone(),
                time_spent_ms: 1,
            },
            None,
        )
        .await
        .unwrap();
    }
    for name in ["fair", "lazy", "rambling"] {
        app.register_model(&caller, model(name, &base))
            .await
            .unwrap();
        let request = JudgeRequest {
            model: name.into(),
            template: None,
            concurrency: 2,
            policy: policy(),
        };
        let calls = app
            .run_judge(&caller, arena.id, request.clone(), &|| {})
            .await
            .unwrap();
        assert_eq!(calls, 6, "{name}: 3 battles × 2 orders");
        let again = app
            .run_judge(&caller, arena.id, request, &|| {})
            .await
            .unwrap();
        assert_eq!(again, 0, "{name}: resumed runs call nothing new");
    }
    let reports = app.judge_reports(&caller, arena.id).await.unwrap();
    let of = |name: &str| reports.iter().find(|r| r.judge == name).unwrap().clone();
    let fair = of("fair");
    assert_eq!((fair.battles, fair.judged, fair.unparseable), (3, 3, 0));
    assert_eq!(fair.consistency, Some(1.0));
    assert_eq!(fair.position_bias, Some(0.5));
    assert_eq!(
        (fair.compared_with_humans, fair.percent_agreement),
        (3, Some(1.0))
    );
    let lazy = of("lazy");
    assert_eq!(lazy.position_bias, Some(1.0), "always the first answer");
    assert_eq!(lazy.consistency, Some(0.0), "its two orders never agree");
    assert_eq!(
        lazy.percent_agreement,
        Some(0.0),
        "an order-inconsistent verdict is a tie"
    );
    let rambling = of("rambling");
    assert_eq!(
        (rambling.judged, rambling.unparseable),
        (0, 6),
        "never guessed"
    );
    assert_eq!(rambling.percent_agreement, None);
}

/// Balanced sampling gives every model about the same number of battles, and sides are drawn
/// at random: each model is shown first about half the time.
#[tokio::test]
async fn balanced_battles_spread_models_evenly_with_random_sides() {
    use quorum_app::evaluation::{BuildBattles, Sampling};
    let (app, caller, _, _dir) = app_with_prompts().await;
    let project = prompt_project(&app, &caller, 60).await;
    let models = ["m1", "m2", "m3", "m4"];
    let answers: String = (0..60)
        .flat_map(|i| models.map(|m| format!("{{\"prompt_id\": \"p{i}\", \"model\": \"{m}\", \"response\": \"{m} on {i}\"}}\n")))
        .collect();
    app.import_generations(&caller, project, &answers)
        .await
        .unwrap();
    let arena = app
        .build_battles(
            &caller,
            project,
            BuildBattles {
                name: "balanced".into(),
                models: vec![],
                sampling: Sampling::Balanced { per_prompt: 2 },
                seed: 9,
                overlap: 1,
                locale_policy: Default::default(),
                questions: None,
            },
        )
        .await
        .unwrap();
    let items = app.store().items(arena.id, 0, 1000).await.unwrap();
    assert_eq!(items.len(), 120, "2 battles for each of 60 prompts");
    let mut appearances = HashMap::new();
    let mut first = HashMap::new();
    for item in &items {
        let responses = item.fields["responses"].as_array().unwrap();
        for (side, r) in responses.iter().enumerate() {
            let model = r["content"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            *appearances.entry(model.clone()).or_insert(0) += 1;
            if side == 0 {
                *first.entry(model).or_insert(0) += 1;
            }
        }
        assert_eq!(responses[0]["name"], "A", "raters see sides, not models");
    }
    for m in models {
        let n = appearances[m];
        assert!(
            (58..=62).contains(&n),
            "{m} battles {n} times: {appearances:?}"
        );
        let share = f64::from(first[m]) / f64::from(n);
        assert!(
            (0.3..=0.7).contains(&share),
            "{m} is shown first {share:.2} of the time"
        );
    }
}

/// Finding 9: by default a model may take its key only from a `QUORUM_KEY_…` variable and call
/// only public addresses; with the operator's leave loopback is allowed, but a redirect is never
/// followed (it could carry the key elsewhere).
#[tokio::test]
async fn the_operator_decides_which_keys_leave_and_where_they_go() {
    let (base, seen) = fake_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.sqlite3").to_str().unwrap())
        .await
        .unwrap();
    let strict = App::new(Arc::new(store), Arc::new(SystemClock));
    let (admin, _) = strict
        .bootstrap_admin(Some("administrator".into()))
        .await
        .unwrap()
        .unwrap();
    let caller = Caller { user: admin };
    let project = prompt_project(&strict, &caller, 1).await;
    for variable in ["QUORUM_DATABASE", "AWS_SECRET_ACCESS_KEY", KEY_VARIABLE] {
        let mut leaky = model("leaky", "https://api.example.org/v1");
        leaky.api_key_env = Some(variable.into());
        let error = strict.register_model(&caller, leaky).await.unwrap_err();
        assert!(
            error.to_string().contains("QUORUM_MODEL_KEYS_ALLOW"),
            "{error}"
        );
    }
    for url in [
        base.as_str(),
        "http://169.254.169.254/latest",
        "http://localhost:1/v1",
    ] {
        let mut inside = model("inside", url);
        inside.api_key_env = None;
        let error = strict.register_model(&caller, inside).await.unwrap_err();
        assert!(error.to_string().contains("private"), "{url}: {error}");
    }
    // Registered before the policy (straight into the store): refused when run.
    let mut old = model("old", &base);
    old.api_key_env = None;
    strict.store().upsert_model(old).await.unwrap();
    let request = RunRequest {
        models: vec!["old".into()],
        concurrency: 1,
        policy: policy(),
    };
    let error = strict
        .run_models(&caller, project, request, &|_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("private"), "{error}");
    assert!(seen.lock().unwrap().is_empty(), "no call was made");

    // Allowed on loopback, a provider that redirects gets no second request anywhere.
    let (collector, collected) = fake_provider().await;
    let redirecting = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let to = format!("{collector}/chat/completions");
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "moved") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await.unwrap() });
    let (app, caller, project, _dir) = app_with_prompts().await;
    app.register_model(&caller, model("moved", &redirector))
        .await
        .unwrap();
    let request = RunRequest {
        models: vec!["moved".into()],
        concurrency: 1,
        policy: policy(),
    };
    let progress = app
        .run_models(&caller, project, request, &|_| {})
        .await
        .unwrap();
    assert_eq!(progress[0].failed, 3, "{progress:?}");
    assert!(
        collected.lock().unwrap().is_empty(),
        "the redirect was not followed"
    );
}

/// A runner that stops gives its running job back to the queue at once (not after its lease),
/// and the next runner resumes it: only the prompts without an answer are called again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_runner_gives_its_job_back_and_the_next_one_resumes_it() {
    let (app, caller, project, _dir) = app_with_prompts().await;
    let (base, seen) = fake_provider().await;
    app.register_model(&caller, model("sleepy", &base))
        .await
        .unwrap();
    let settings = |name: &str| RunnerSettings {
        name: name.into(),
        poll: Duration::from_millis(50),
        ..RunnerSettings::default()
    };
    let first = app.start_job_runner(settings("first"));
    let request = RunRequest {
        models: vec!["sleepy".into()],
        concurrency: 1,
        policy: policy(),
    };
    let jobs = app
        .start_model_run(&caller, project, &request)
        .await
        .unwrap();
    let id = jobs[0].id;
    // A second start of the same model on the project is refused while the job is live.
    assert!(
        app.start_model_run(&caller, project, &request)
            .await
            .is_err()
    );
    let answered = |app: &App<SqliteStore>| {
        let app = app.clone();
        async move {
            app.store()
                .generations(project)
                .await
                .unwrap()
                .iter()
                .filter(|g| g.output.is_some())
                .count()
        }
    };
    for _ in 0..100 {
        if answered(&app).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.job(&caller, id).await.unwrap().state, JobState::Running);
    first.stop().await;
    let given_back = app.job(&caller, id).await.unwrap();
    assert_eq!(
        (given_back.state, given_back.runner.clone()),
        (JobState::Queued, None)
    );
    let before = answered(&app).await;
    assert!(before < 3, "stopped mid-run: {before} answered");

    let second = app.start_job_runner(settings("second"));
    let mut done = given_back;
    for _ in 0..200 {
        done = app.job(&caller, id).await.unwrap();
        if done.state == JobState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!((done.attempts, done.runner.as_deref()), (2, Some("second")));
    assert_eq!(answered(&app).await, 3);
    // Each prompt answered was called once, but for the one in flight when the first stopped.
    let calls: usize = seen.lock().unwrap().values().map(Vec::len).sum();
    assert!((3..=4).contains(&calls), "{calls} calls");
    second.stop().await;
}

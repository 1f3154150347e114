//! A client for OpenAI-compatible chat-completions endpoints, with the retry rules model runs
//! and LLM judges need: a timeout per attempt; on 429, 5xx, a network error, a timeout or a
//! reply that is not the expected JSON, another attempt after an exponential backoff (or
//! after the server's `Retry-After`, when it sends one); any other 4xx fails at once.
//!
//! The API key is read from the environment variable the model names, at call time; it is
//! never stored, logged or put in an error message.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use quorum_store::ModelSpec;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first backoff; it doubles with each attempt, up to `max_wait`.
    pub base: Duration,
    pub max_wait: Duration,
    /// For one attempt, from sending the request to the end of the reply.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
        }
    }
}

/// A completed chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// Of the successful attempt.
    pub latency_ms: i64,
    pub attempts: u32,
}

/// A request that did not complete: why, and after how many attempts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (after {attempts} attempt(s))")]
pub struct ChatFailure {
    pub message: String,
    pub attempts: u32,
}

/// What an administrator's model registration may make the servers do: which environment
/// variables may hold a model's key (so no registration can send, say, the database URL or a
/// cloud credential to an endpoint of its choosing), and whether endpoints may sit on this
/// machine or the private network (the cloud metadata service, an internal admin page…).
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Variables a model may name for its key, besides any starting with [`KEY_PREFIX`]
    /// (`QUORUM_MODEL_KEYS_ALLOW`).
    pub key_variables: Vec<String>,
    /// Endpoints on loopback, private, link-local and other non-public addresses are allowed
    /// (`QUORUM_ALLOW_PRIVATE_MODEL_HOSTS`; for models served on the same network).
    pub allow_private: bool,
}

/// Environment variables whose names start with this may always hold model keys.
pub const KEY_PREFIX: &str = "QUORUM_KEY_";

impl Egress {
    /// Everything allowed: for tests and trials against models on this machine.
    pub fn permissive() -> Self {
        Self {
            key_variables: Vec::new(),
            allow_private: true,
        }
    }

    pub fn key_allowed(&self, variable: &str) -> bool {
        variable.starts_with(KEY_PREFIX) && variable.len() > KEY_PREFIX.len()
            || self.key_variables.iter().any(|v| v == variable)
    }

    /// An HTTP client for outbound calls (model endpoints, webhooks): it follows no redirects
    /// (a redirect could lead a key or an event elsewhere) and, unless private addresses are
    /// allowed, resolves names to public addresses only.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if self.allow_private {
            builder
        } else {
            builder.dns_resolver(std::sync::Arc::new(PublicOnly))
        }
    }

    /// Why this endpoint may not be called, if it may not: a host that is an address (or
    /// `localhost`) outside the public internet. Names are also checked when they resolve.
    pub fn refuse_url(&self, url: &str) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(e) => return Some(format!("`{url}` is not a URL: {e}")),
        };
        let host = parsed.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let private = match bare.parse::<IpAddr>() {
            Ok(address) => !is_public(address),
            Err(_) => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                name.is_empty() || name == "localhost" || name.ends_with(".localhost")
            }
        };
        private.then(|| {
            format!(
                "`{url}` is on a loopback or private address; the operator must allow such endpoints (QUORUM_ALLOW_PRIVATE_MODEL_HOSTS)"
            )
        })
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local — which
/// holds cloud metadata services —, shared, documentation, multicast or reserved).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || first == 0
                || first >= 240
                || (first == 100 && (second & 0xc0) == 64)
                || (first == 192 && second == 0)
                || (first == 198 && (second & 0xfe) == 18))
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let head = a.segments()[0];
                !(a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (head & 0xfe00) == 0xfc00
                    || (head & 0xffc0) == 0xfe80
                    || head == 0x2001 && a.segments()[1] == 0x0db8
                    || head == 0x64 && a.segments()[1] == 0xff9b)
            }
        },
    }
}

/// Resolves names with the system resolver and keeps only public addresses, so a name that
/// points (or is re-pointed) at a private address is refused when connecting, not just when
/// registered.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} has no public address; the operator must allow private model endpoints"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    egress: Egress,
}

/// What one attempt came to.
enum Attempt {
    Done(ChatReply),
    /// Worth another attempt, after the server's requested wait if it gave one.
    Retry(String, Option<Duration>),
    Fail(String),
}

/// `Retry-After` as a number of seconds (the HTTP-date form is not used by these APIs), at
/// most a day: the caller waits no longer than its own cap anyway.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// The reply's text and token counts, or why the body is not a chat completion.
fn parse_reply(body: &str) -> Result<(String, Option<i64>, Option<i64>), String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or("the reply has no choices[0].message.content")?;
    let usage = |key: &str| {
        value
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_i64)
    };
    Ok((
        content.to_string(),
        usage("prompt_tokens"),
        usage("completion_tokens"),
    ))
}

impl ChatClient {
    /// A client that follows no redirects (a redirect could lead the key elsewhere) and, unless
    /// `egress` allows them, connects to public addresses only.
    pub fn new(egress: &Egress) -> Self {
        Self {
            http: egress.client_builder().build().unwrap_or_default(),
            egress: egress.clone(),
        }
    }

    /// The model's API key from its environment variable, if it names one the operator allows.
    pub fn api_key(model: &ModelSpec, egress: &Egress) -> Result<Option<String>, String> {
        match &model.api_key_env {
            None => Ok(None),
            Some(variable) if !egress.key_allowed(variable) => Err(format!(
                "model `{}`: {variable} may not hold a model key; use a variable named {KEY_PREFIX}… or list it in QUORUM_MODEL_KEYS_ALLOW",
                model.name
            )),
            Some(variable) => std::env::var(variable).map(Some).map_err(|_| {
                format!(
                    "model `{}`: the environment variable {variable} is not set",
                    model.name
                )
            }),
        }
    }

    async fn attempt(
        &self,
        url: &str,
        key: Option<&str>,
        body: &Value,
        timeout: Duration,
        attempt: u32,
    ) -> Attempt {
        let started = Instant::now();
        let mut request = self.http.post(url).json(body).timeout(timeout);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Attempt::Retry("timed out".into(), None),
            Err(e) => {
                return Attempt::Retry(format!("could not reach the endpoint: {e}"), None);
            }
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) if e.is_timeout() => return Attempt::Retry("timed out".into(), None),
            Err(e) => return Attempt::Retry(format!("the reply broke off: {e}"), None),
        };
        if status.as_u16() == 429 || status.is_server_error() {
            return Attempt::Retry(format!("HTTP {}", status.as_u16()), wait);
        }
        if !status.is_success() {
            let detail: String = text.chars().take(300).collect();
            return Attempt::Fail(format!("HTTP {}: {detail}", status.as_u16()));
        }
        match parse_reply(&text) {
            Ok((content, prompt_tokens, completion_tokens)) => Attempt::Done(ChatReply {
                content,
                prompt_tokens,
                completion_tokens,
                latency_ms: started.elapsed().as_millis() as i64,
                attempts: attempt,
            }),
            Err(problem) => Attempt::Retry(problem, None),
        }
    }

    /// Sends `messages` to the model, retrying as the module describes.
    pub async fn complete(
        &self,
        model: &ModelSpec,
        messages: &[Value],
        policy: &RetryPolicy,
    ) -> Result<ChatReply, ChatFailure> {
        let fail = |message: String, attempts| ChatFailure { message, attempts };
        let base_url = model.base_url.as_deref().ok_or_else(|| {
            fail(
                format!(
                    "model `{}` has no endpoint (its answers are imported)",
                    model.name
                ),
                0,
            )
        })?;
        if let Some(refused) = self.egress.refuse_url(base_url) {
            return Err(fail(refused, 0));
        }
        let key = Self::api_key(model, &self.egress).map_err(|m| fail(m, 0))?;
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let mut body = json!({
            "model": model.model_id.as_deref().unwrap_or(&model.name),
            "messages": messages,
        });
        if let (Some(body), Some(parameters)) = (body.as_object_mut(), model.parameters.as_object())
        {
            for (name, value) in parameters {
                if name != "model" && name != "messages" {
                    body.insert(name.clone(), value.clone());
                }
            }
        }
        let mut last = String::new();
        for attempt in 1..=policy.max_attempts.max(1) {
            match self
                .attempt(&url, key.as_deref(), &body, policy.timeout, attempt)
                .await
            {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(message) => return Err(fail(message, attempt)),
                Attempt::Retry(message, wait) => {
                    last = message;
                    if attempt == policy.max_attempts {
                        break;
                    }
                    let backoff = policy
                        .base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(policy.max_wait);
                    let wait = wait.map_or(backoff, |w| w.min(policy.max_wait));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(fail(last, policy.max_attempts.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_endpoints_and_allowed_key_variables_unless_the_operator_says_so() {
        let strict = Egress::default();
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://localhost/v1",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/v1",
            "http://[::1]/v1",
            "http://[::ffff:192.168.0.1]/v1",
            "http://100.64.0.1/",
        ] {
            assert!(strict.refuse_url(url).is_some(), "{url}");
            assert!(Egress::permissive().refuse_url(url).is_none(), "{url}");
        }
        assert!(strict.refuse_url("https://api.example.org/v1").is_none());
        assert!(strict.refuse_url("https://8.8.8.8/v1").is_none());
        assert!(strict.key_allowed("QUORUM_KEY_OPENAI"));
        for variable in [
            "QUORUM_DATABASE",
            "AWS_SECRET_ACCESS_KEY",
            "HOME",
            "QUORUM_KEY_",
        ] {
            assert!(!strict.key_allowed(variable), "{variable}");
        }
        let listed = Egress {
            key_variables: vec!["OPENAI_API_KEY".into()],
            ..Egress::default()
        };
        assert!(listed.key_allowed("OPENAI_API_KEY"));
    }

    #[test]
    fn retry_after_is_clamped() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "1e30".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    }

    #[test]
    fn replies_are_read_or_refused_with_a_reason() {
        let ok = r#"{"choices": [{"message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1}}"#;
        assert_eq!(parse_reply(ok), Ok(("hi".to_string(), Some(3), Some(1))));
        assert!(parse_reply("{not json").unwrap_err().contains("not JSON"));
        assert!(
            parse_reply(r#"{"choices": []}"#)
                .unwrap_err()
                .contains("choices[0]")
        );
    }
}

//! A client for OpenAI-compatible chat-completions endpoints, with the retry rules model runs
//! and LLM judges need: a timeout per attempt; on 429, 5xx, a network error, a timeout or a
//! reply that is not the expected JSON, another attempt after an exponential backoff (or
//! after the server's `Retry-After`, when it sends one); any other 4xx fails at once.
//!
//! The API key is read from the environment variable the model names, at call time; it is
//! never stored, logged or put in an error message.

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

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
}

impl Default for ChatClient {
    fn default() -> Self {
        Self::new()
    }
}

/// What one attempt came to.
enum Attempt {
    Done(ChatReply),
    /// Worth another attempt, after the server's requested wait if it gave one.
    Retry(String, Option<Duration>),
    Fail(String),
}

/// `Retry-After` as a number of seconds (the HTTP-date form is not used by these APIs).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
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
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::new(),
        }
    }

    /// The model's API key from its environment variable, if it names one.
    pub fn api_key(model: &ModelSpec) -> Result<Option<String>, String> {
        match &model.api_key_env {
            None => Ok(None),
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
        let key = Self::api_key(model).map_err(|m| fail(m, 0))?;
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

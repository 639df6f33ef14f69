//! The answer side of chat: one call to an OpenAI-compatible chat-completions endpoint, the
//! circuit breaker that stops every session from waiting on an endpoint that keeps failing, and
//! the citations an answer makes. `context` builds the messages from search hits; the SQL layer
//! runs `complete` on a helper thread so that a cancel never waits for the network.
use crate::{DocError, ErrorKind};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub mod context;

/// Replies larger than this are not chat answers.
const MAX_REPLY_BYTES: u64 = 16 << 20;
/// How much of an endpoint's error body goes into our message.
const ERROR_EXCERPT_CHARS: usize = 300;

pub struct Endpoint {
    /// The API base (`https://api.openai.com/v1`) or the full chat-completions URL.
    pub url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, PartialEq)]
pub struct Completion {
    pub answer: String,
    /// The model the endpoint says answered (may differ from the one asked for).
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Value,
}

pub fn completions_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    }
}

/// The request body: the messages as built, the model, no streaming, and only the sampling
/// options the caller set (the endpoint's defaults otherwise).
pub fn request_body(model: &str, messages: &Value, temperature: Option<f64>, max_tokens: Option<i32>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), messages.clone());
    body.insert("stream".into(), json!(false));
    if let Some(t) = temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(m) = max_tokens {
        body.insert("max_tokens".into(), json!(m));
    }
    Value::Object(body)
}

/// One POST, bounded by the endpoint's timeout. Redirects are not followed: the API key must
/// only ever go to the configured address.
pub fn complete(endpoint: &Endpoint, body: &Value) -> Result<Completion, DocError> {
    let url = completions_url(&endpoint.url);
    let agent = ureq::AgentBuilder::new().timeout(endpoint.timeout).redirects(0).build();
    let mut request = agent.post(&url).set("Content-Type", "application/json").set("Accept", "application/json");
    if let Some(key) = &endpoint.api_key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    match request.send_string(&body.to_string()) {
        Ok(response) if response.status() == 200 => parse_reply(&read_body(response, endpoint)?),
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let status = response.status();
            let text = read_body(response, endpoint).unwrap_or_default();
            Err(status_error(status, &text, &url))
        }
        Err(ureq::Error::Transport(t)) => Err(transport_error(&t, endpoint, &url)),
    }
}

fn read_body(response: ureq::Response, endpoint: &Endpoint) -> Result<String, DocError> {
    let mut text = String::new();
    response.into_reader().take(MAX_REPLY_BYTES).read_to_string(&mut text).map_err(|e| {
        if is_timeout(&e) {
            timeout_error(endpoint)
        } else {
            DocError::new(ErrorKind::ChatFailed, format!("cannot read the chat endpoint's reply: {e}"))
        }
    })?;
    Ok(text)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
}

fn timeout_error(endpoint: &Endpoint) -> DocError {
    DocError::new(ErrorKind::ChatTimeout, format!("the chat endpoint did not answer within {} ms", endpoint.timeout.as_millis()))
        .with_hint("raise docchat.chat_timeout, or ask for a shorter answer (max_tokens)")
}

fn transport_error(t: &ureq::Transport, endpoint: &Endpoint, url: &str) -> DocError {
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<std::io::Error>());
    if io.is_some_and(is_timeout) {
        return timeout_error(endpoint);
    }
    match t.kind() {
        ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => {
            DocError::new(ErrorKind::ChatUnreachable, format!("cannot connect to the chat endpoint {url}: {t}"))
                .with_hint("check docchat.chat_url and that the endpoint is running and reachable from the database server")
        }
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
            DocError::new(ErrorKind::ChatUnconfigured, format!("docchat.chat_url is not a valid http(s) URL: {url}"))
                .with_hint("set it to the API base, e.g. ALTER SYSTEM SET docchat.chat_url = 'https://api.openai.com/v1'")
        }
        _ => DocError::new(ErrorKind::ChatFailed, format!("the chat request to {url} failed: {t}")),
    }
}

fn status_error(status: u16, body: &str, url: &str) -> DocError {
    // OpenAI-style errors carry {"error": {"message": ...}}; anything else is quoted as it came.
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(ERROR_EXCERPT_CHARS).collect());
    let message = format!("the chat endpoint answered HTTP {status}: {said}");
    match status {
        401 | 403 => DocError::new(ErrorKind::ChatRejected, message)
            .with_hint("check the API key: docchat.chat_api_key or the file named by docchat.chat_api_key_file"),
        429 | 500..=599 => DocError::new(ErrorKind::ChatFailed, message).with_hint("the endpoint is overloaded or down; try again later"),
        300..=399 => DocError::new(ErrorKind::ChatRefused, message)
            .with_hint(format!("redirects are not followed; set docchat.chat_url to the final address instead of {url}")),
        404 => DocError::new(ErrorKind::ChatRefused, message)
            .with_hint("docchat.chat_url should be the API base (e.g. https://api.openai.com/v1); check docchat.chat_model too"),
        _ => DocError::new(ErrorKind::ChatRefused, message),
    }
}

/// Whether a failure says the endpoint is unwell (counts towards opening the breaker), rather
/// than that this request or the configuration was wrong (a 400 for a too-long prompt, a 401).
pub fn endpoint_unwell(e: &DocError) -> bool {
    matches!(e.kind, ErrorKind::ChatUnreachable | ErrorKind::ChatTimeout | ErrorKind::ChatFailed)
}

pub fn parse_reply(text: &str) -> Result<Completion, DocError> {
    let malformed = |why: &str| {
        let excerpt: String = text.chars().take(ERROR_EXCERPT_CHARS).collect();
        DocError::new(ErrorKind::ChatFailed, format!("the chat endpoint's reply is not a chat completion ({why}): {excerpt}"))
            .with_hint("docchat.chat_url must point at an OpenAI-compatible /chat/completions API")
    };
    let reply: Value = serde_json::from_str(text).map_err(|_| malformed("not JSON"))?;
    let choice = reply.pointer("/choices/0").ok_or_else(|| malformed("no choices"))?;
    let answer = choice.pointer("/message/content").and_then(Value::as_str).ok_or_else(|| malformed("no message content"))?;
    Ok(Completion {
        answer: answer.to_string(),
        model: reply.get("model").and_then(Value::as_str).map(str::to_owned),
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        usage: reply.get("usage").cloned().unwrap_or(Value::Null),
    })
}

/// The passage numbers an answer cites, in order of first citation: `[2]`, `[1, 3]`, `[1][4]`.
pub fn cited_numbers(answer: &str) -> Vec<u32> {
    let mut cited = Vec::new();
    for (start, _) in answer.match_indices('[') {
        let Some(len) = answer[start + 1..].find(']') else { break };
        let inside = &answer[start + 1..start + 1 + len];
        let numbers: Option<Vec<u32>> = inside.split(',').map(|n| n.trim().parse::<u32>().ok()).collect();
        for n in numbers.unwrap_or_default() {
            if !cited.contains(&n) {
                cited.push(n);
            }
        }
    }
    cited
}

/// Consecutive endpoint failures and the time (ms since the epoch) until which calls are
/// refused. The atomics live in shared memory when docchat is preloaded, so every session
/// sees the same breaker; `threshold` 0 turns it off.
pub struct Breaker<'a> {
    pub failures: &'a AtomicU64,
    pub open_until_ms: &'a AtomicU64,
    pub threshold: u64,
    pub cooldown: Duration,
}

impl Breaker<'_> {
    /// Refuses while open. After the cooldown calls go through again; one more failure reopens
    /// it at once (the count stays at the threshold until a success).
    pub fn check(&self, now_ms: u64) -> Result<(), DocError> {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if self.threshold == 0 || now_ms >= until {
            return Ok(());
        }
        let failures = self.failures.load(Ordering::Relaxed);
        Err(DocError::new(
            ErrorKind::ChatCircuitOpen,
            format!("the chat endpoint failed {failures} times in a row; docchat stops calling it for {} s", (until - now_ms).div_ceil(1000)),
        )
        .with_hint("see the earlier errors for why; docchat.chat_breaker_cooldown sets the pause"))
    }

    pub fn record(&self, outcome: Result<(), &DocError>, now_ms: u64) {
        match outcome {
            Ok(()) => self.failures.store(0, Ordering::Relaxed),
            Err(e) if endpoint_unwell(e) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if self.threshold > 0 && failures >= self.threshold {
                    self.open_until_ms.store(now_ms + self.cooldown.as_millis() as u64, Ordering::Relaxed);
                }
            }
            Err(_) => {}
        }
    }

    pub fn is_open(&self, now_ms: u64) -> bool {
        self.check(now_ms).is_err()
    }
}

#[cfg(test)]
mod tests;

use super::*;
use docchat_tests::fake_llm::{self, FakeLlm, Reply};
use std::time::Instant;

fn endpoint(url: &str) -> Endpoint {
    Endpoint { url: url.to_string(), api_key: Some("sk-test".into()), timeout: Duration::from_millis(2000) }
}

fn body() -> Value {
    request_body("m", &json!([{"role": "user", "content": "hi"}]), None, None)
}

#[test]
fn url_is_the_base_or_the_full_address() {
    assert_eq!(completions_url("https://api.openai.com/v1"), "https://api.openai.com/v1/chat/completions");
    assert_eq!(completions_url("http://h:8080/v1/ "), "http://h:8080/v1/chat/completions");
    assert_eq!(completions_url("http://h/v1/chat/completions"), "http://h/v1/chat/completions");
}

#[test]
fn body_has_only_the_options_given() {
    let messages = json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]);
    assert_eq!(request_body("gpt-x", &messages, None, None), json!({"model": "gpt-x", "messages": messages, "stream": false}));
    assert_eq!(
        request_body("gpt-x", &messages, Some(0.25), Some(300)),
        json!({"model": "gpt-x", "messages": messages, "stream": false, "temperature": 0.25, "max_tokens": 300})
    );
}

#[test]
fn replies_parse_or_say_why_not() {
    let ok = parse_reply(&fake_llm::completion("Paris [1].").body).unwrap();
    assert_eq!(ok.answer, "Paris [1].");
    assert_eq!(ok.model.as_deref(), Some("fake-model-0613"));
    assert_eq!(ok.finish_reason.as_deref(), Some("stop"));
    assert_eq!(ok.usage["total_tokens"], 120);
    for (text, why) in [
        ("<html>gateway</html>", "not JSON"),
        (r#"{"choices": []}"#, "no choices"),
        (r#"{"choices": [{"message": {"role": "assistant", "content": null}}]}"#, "no message content"),
    ] {
        let e = parse_reply(text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ChatFailed);
        assert_eq!(e.message, format!("the chat endpoint's reply is not a chat completion ({why}): {text}"));
    }
}

#[test]
fn citations_in_order_of_first_mention() {
    assert_eq!(cited_numbers("A [2]. B [1, 3]. C [2][4]. D [x] [5"), vec![2, 1, 3, 4]);
    assert_eq!(cited_numbers("no citations, [] nor [1.5]"), Vec::<u32>::new());
}

#[test]
fn breaker_opens_after_threshold_and_closes_after_cooldown_or_success() {
    let (failures, until) = (AtomicU64::new(0), AtomicU64::new(0));
    let b = Breaker { failures: &failures, open_until_ms: &until, threshold: 3, cooldown: Duration::from_secs(30) };
    let down = DocError::new(ErrorKind::ChatTimeout, "t");
    let bad_request = DocError::new(ErrorKind::ChatRefused, "the chat endpoint answered HTTP 400: too long");
    b.record(Err(&down), 1_000);
    b.record(Err(&bad_request), 1_000); // the endpoint is fine: not counted
    b.record(Err(&down), 1_000);
    assert!(b.check(1_000).is_ok());
    b.record(Err(&down), 2_000);
    let e = b.check(2_500).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ChatCircuitOpen);
    assert_eq!(e.message, "the chat endpoint failed 3 times in a row; docchat stops calling it for 30 s");
    assert!(b.is_open(31_999) && !b.is_open(32_000));
    // Half-open: one more failure reopens at once; a success resets the count.
    b.record(Err(&down), 32_000);
    assert!(b.is_open(32_001));
    b.record(Ok(()), 62_000);
    b.record(Err(&down), 62_000);
    assert!(!b.is_open(62_001));
    let off = Breaker { threshold: 0, ..b };
    for _ in 0..5 {
        off.record(Err(&down), 70_000);
    }
    assert!(!off.is_open(70_001));
}

#[test]
fn sends_one_post_with_the_key_and_json() {
    let llm = FakeLlm::start();
    llm.queue(fake_llm::completion("It is 42 [1]."));
    let done = complete(&endpoint(&llm.url), &body()).unwrap();
    assert_eq!(done.answer, "It is 42 [1].");
    let seen = llm.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].json(), body());
    let no_key = Endpoint { api_key: None, ..endpoint(&llm.url) };
    complete(&no_key, &body()).unwrap();
    assert_eq!(llm.requests()[1].header("authorization"), None);
}

#[test]
fn failures_are_classified() {
    let llm = FakeLlm::start();
    let cases: [(Reply, ErrorKind, &str); 6] = [
        (
            fake_llm::status(401, r#"{"error": {"message": "Incorrect API key provided"}}"#),
            ErrorKind::ChatRejected,
            "the chat endpoint answered HTTP 401: Incorrect API key provided",
        ),
        (
            fake_llm::status(400, r#"{"error": {"message": "maximum context length exceeded"}}"#),
            ErrorKind::ChatRefused,
            "the chat endpoint answered HTTP 400: maximum context length exceeded",
        ),
        (fake_llm::status(503, "upstream down"), ErrorKind::ChatFailed, "the chat endpoint answered HTTP 503: upstream down"),
        (
            fake_llm::status(429, r#"{"error": {"message": "Rate limit reached"}}"#),
            ErrorKind::ChatFailed,
            "the chat endpoint answered HTTP 429: Rate limit reached",
        ),
        (fake_llm::status(302, ""), ErrorKind::ChatRefused, "the chat endpoint answered HTTP 302: "),
        (fake_llm::status(200, "not json"), ErrorKind::ChatFailed, "the chat endpoint's reply is not a chat completion (not JSON): not json"),
    ];
    for (reply, kind, message) in cases {
        llm.queue(reply);
        let e = complete(&endpoint(&llm.url), &body()).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (kind, message));
        assert!(e.hint.is_some() || kind == ErrorKind::ChatRefused, "{message}");
    }
    assert_eq!(llm.requests().len(), 6, "one request each, no retries, no redirect followed");
}

#[test]
fn slow_and_absent_endpoints() {
    let llm = FakeLlm::start();
    llm.queue(Reply { delay: Duration::from_secs(5), ..fake_llm::completion("late") });
    let quick = Endpoint { timeout: Duration::from_millis(300), ..endpoint(&llm.url) };
    let started = Instant::now();
    let e = complete(&quick, &body()).unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::ChatTimeout, "the chat endpoint did not answer within 300 ms"));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = complete(&endpoint(&format!("http://127.0.0.1:{port}/v1")), &body()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ChatUnreachable, "{}", e.message);
    let e = complete(&endpoint("ftp://example/v1"), &body()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ChatUnconfigured, "{}", e.message);
}

//! docchat_chat against a loopback OpenAI-compatible server: the exact request, the answer with
//! its citations, the superuser-only key, timeouts, cancel, endpoint errors and the breaker.
use docchat_tests::fake_llm::{self, FakeLlm, Reply};
use docchat_tests::*;
use postgres::Client;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker is one per cluster: tests that make the endpoint fail take turns.
static ENDPOINT: Mutex<()> = Mutex::new(());

const NOTES: &str = "Project Falcon status. The Falcon launch moved to March because the supplier of the radar \
units was late. The budget for Falcon is 3.1 million euros. Maria Lopez leads the test flights in Seville.";

/// A database with one user's notes; the superuser session points docchat at `llm` and
/// becomes that user (SET ROLE keeps the superuser-only settings it made).
fn setup(name: &str, llm: &FakeLlm) -> Client {
    let mut c = fresh_db(name);
    create_role(&mut c, &format!("{name}_user"), false);
    c.batch_execute(&format!(
        "SET docchat.chat_url = '{}'; SET docchat.chat_model = 'test-model'; SET docchat.chat_api_key = 'sk-test';
         SET ROLE {name}_user;",
        llm.url
    ))
    .unwrap();
    ingest(&mut c, NOTES.as_bytes(), "falcon.txt").unwrap();
    c
}

fn chat(c: &mut Client, sql_args: &str) -> Result<Value, postgres::Error> {
    let row = c.query_one(&format!("SELECT docchat_chat({sql_args})::text"), &[])?;
    Ok(row.get::<_, String>(0).parse().unwrap())
}

fn fails(c: &mut Client, sql_args: &str) -> (String, String, Option<String>) {
    let e = chat(c, sql_args).expect_err(sql_args);
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e}"));
    (db.code().code().to_string(), db.message().to_string(), db.hint().map(str::to_owned))
}

#[test]
fn sends_the_context_and_returns_the_cited_answer() {
    let _turn = ENDPOINT.lock().unwrap_or_else(|p| p.into_inner());
    let llm = FakeLlm::start();
    let mut c = setup("t_chat_answer", &llm);
    let history = json!([{"role": "user", "content": "What is Project Falcon?"}, {"role": "assistant", "content": "A launch project."}]);
    let args = format!("'Why was the launch moved?', '{history}', k => 4, max_context_tokens => 500");
    let ctx: Value = c.query_one(&format!("SELECT docchat_chat_context({args})::text"), &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!(ctx["context"][0]["filename"], "falcon.txt");
    llm.queue(fake_llm::completion("The supplier of the radar units was late [1]. See also [9]."));

    let answer = chat(&mut c, &format!("{args}, temperature => 0.2, max_tokens => 200")).unwrap();
    let seen = llm.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].json(), json!({"model": "test-model", "messages": ctx["messages"], "stream": false, "temperature": 0.2, "max_tokens": 200}));
    assert_eq!(answer["answer"], "The supplier of the radar units was late [1]. See also [9].");
    // [9] names no passage: only [1] is a citation.
    assert_eq!(answer["citations"], json!([ctx["context"][0]]));
    assert_eq!(answer["context"], ctx["context"]);
    assert_eq!(answer["model"], "fake-model-0613");
    assert_eq!(answer["finish_reason"], "stop");
    assert_eq!(answer["usage"]["total_tokens"], 120);

    // Without sampling options none are sent; the key may come from a server-side file.
    let key_file = std::env::temp_dir().join("docchat-test-chat-key");
    std::fs::write(&key_file, " sk-from-file\n").unwrap();
    c.batch_execute(&format!(
        "RESET ROLE; RESET docchat.chat_api_key; SET docchat.chat_api_key_file = '{}'; SET ROLE t_chat_answer_user",
        key_file.display()
    ))
    .unwrap();
    chat(&mut c, "'Who leads the test flights?'").unwrap();
    let seen = llm.requests();
    assert_eq!(seen[1].header("authorization"), Some("Bearer sk-from-file"));
    let body = seen[1].json();
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["messages", "model", "stream"]);
    std::fs::remove_file(&key_file).unwrap();
    let (code, message, _) = fails(&mut c, "'Who leads the test flights?'");
    assert_eq!(code, "55000");
    assert!(message.starts_with(&format!("docchat_chat: cannot read docchat.chat_api_key_file {}: ", key_file.display())), "{message}");
    assert_eq!(llm.requests().len(), 2);
}

#[test]
fn only_superusers_set_the_endpoint_or_see_the_key() {
    let llm = FakeLlm::start();
    let mut c = setup("t_chat_settings", &llm);
    for sql in [
        "SET docchat.chat_api_key = 'sk-mine'",
        "SET docchat.chat_url = 'http://attacker.example/v1'",
        "SET docchat.chat_api_key_file = '/etc/passwd'",
        "SET docchat.chat_breaker_failures = 0",
        "SHOW docchat.chat_api_key",
        "SELECT current_setting('docchat.chat_api_key')",
    ] {
        let e = c.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
    }
    let listed: i64 = c.query_one("SELECT count(*) FROM pg_settings WHERE name = 'docchat.chat_api_key'", &[]).unwrap().get(0);
    assert_eq!(listed, 0);
    // The model and the timeout are the caller's to choose.
    c.batch_execute("SET docchat.chat_model = 'other-model'; SET docchat.chat_timeout = 5000").unwrap();
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!(health["chat"]["configured"], true);
    assert_eq!(health["chat"]["url"], format!("{}/chat/completions", llm.url));
    assert_eq!(health["chat"]["model"], "other-model");
    assert_eq!(health["chat"]["api_key_from"], "docchat.chat_api_key");
    assert!(!health.to_string().contains("sk-test"));
}

#[test]
fn endpoint_failures_are_clear_errors() {
    let _turn = ENDPOINT.lock().unwrap_or_else(|p| p.into_inner());
    let llm = FakeLlm::start();
    let mut c = setup("t_chat_errors", &llm);
    let ask = "'When is the launch?'";
    let cases: [(Reply, &str, &str); 5] = [
        (fake_llm::status(500, r#"{"error": {"message": "boom"}}"#), "38000", "docchat_chat: the chat endpoint answered HTTP 500: boom"),
        (
            fake_llm::status(401, r#"{"error": {"message": "Incorrect API key"}}"#),
            "38000",
            "docchat_chat: the chat endpoint answered HTTP 401: Incorrect API key",
        ),
        (fake_llm::status(404, "no such route"), "38000", "docchat_chat: the chat endpoint answered HTTP 404: no such route"),
        (
            fake_llm::status(200, r#"{"choices": []}"#),
            "38000",
            r#"docchat_chat: the chat endpoint's reply is not a chat completion (no choices): {"choices": []}"#,
        ),
        (
            Reply { delay: Duration::from_secs(3), ..fake_llm::completion("late") },
            "58030",
            "docchat_chat: the chat endpoint did not answer within 300 ms",
        ),
    ];
    c.batch_execute("SET docchat.chat_timeout = 300").unwrap();
    for (reply, code, message) in cases {
        llm.queue(reply);
        let (got_code, got_message, hint) = fails(&mut c, ask);
        assert_eq!((got_code.as_str(), got_message.as_str()), (code, message));
        assert!(hint.is_some(), "{message}");
    }
    assert_eq!(llm.requests().len(), 5);

    // A cancel (here statement_timeout) ends the statement at once, not when the endpoint answers.
    llm.queue(Reply { delay: Duration::from_secs(5), ..fake_llm::completion("late") });
    c.batch_execute("SET docchat.chat_timeout = 60000; SET statement_timeout = 400").unwrap();
    let started = Instant::now();
    assert_eq!(fails(&mut c, ask).0, "57014");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    c.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(chat(&mut c, ask).unwrap()["answer"], "ok");

    // Bad arguments are refused before any request.
    let before = llm.requests().len();
    for (args, message) in [
        ("'x', temperature => 3", "docchat_chat: temperature must be between 0 and 2, not 3"),
        ("'x', max_tokens => 0", "docchat_chat: max_tokens must be between 1 and 4096, not 0"),
        ("'x', max_tokens => 4097", "docchat_chat: max_tokens must be between 1 and 4096, not 4097"),
    ] {
        assert_eq!(fails(&mut c, args).0, "22023", "{args}");
        assert_eq!(fails(&mut c, args).1, message);
    }
    assert_eq!(fails(&mut c, "'x', '{\"role\": \"user\"}'").0, "22023");
    assert_eq!(llm.requests().len(), before);

    // Unconfigured: a clear error that says what to set.
    c.batch_execute("RESET ROLE; RESET docchat.chat_url; SET ROLE t_chat_errors_user").unwrap();
    let (code, message, hint) = fails(&mut c, ask);
    assert_eq!((code.as_str(), message.as_str()), ("55000", "docchat_chat: no chat endpoint is configured"));
    assert!(hint.unwrap().contains("docchat.chat_url"));
}

#[test]
fn repeated_failures_open_one_breaker_for_every_session() {
    let _turn = ENDPOINT.lock().unwrap_or_else(|p| p.into_inner());
    let llm = FakeLlm::start();
    let mut c = setup("t_chat_breaker", &llm);
    c.batch_execute("RESET ROLE; SET docchat.chat_breaker_failures = 3; SET docchat.chat_breaker_cooldown = 2; SET ROLE t_chat_breaker_user")
        .unwrap();
    let ask = "'When is the launch?'";
    chat(&mut c, ask).unwrap(); // a success resets whatever earlier tests left
    for _ in 0..3 {
        llm.queue(fake_llm::status(503, "overloaded"));
        assert_eq!(fails(&mut c, ask).0, "38000");
    }
    let (code, message, _) = fails(&mut c, ask);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("55000", "docchat_chat: the chat endpoint failed 3 times in a row; docchat stops calling it for 2 s")
    );
    assert_eq!(llm.requests().len(), 4, "the open breaker sends nothing");
    // Another session, with the default settings, is refused too: the breaker is the cluster's.
    let mut other = connect("t_chat_breaker", "postgres");
    other.batch_execute(&format!("SET docchat.chat_url = '{}'; SET docchat.chat_model = 'test-model'", llm.url)).unwrap();
    assert_eq!(fails(&mut other, ask).0, "55000");
    let health: Value = other.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!((health["chat"]["breaker_open"].clone(), health["chat"]["consecutive_failures"].clone()), (json!(true), json!(3)));
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(chat(&mut other, ask).unwrap()["answer"], "ok");
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!((health["chat"]["breaker_open"].clone(), health["chat"]["consecutive_failures"].clone()), (json!(false), json!(0)));
    assert_eq!(llm.requests().len(), 5);
}

#[test]
fn a_short_session_timeout_cannot_open_the_breaker() {
    let _turn = ENDPOINT.lock().unwrap_or_else(|p| p.into_inner());
    let llm = FakeLlm::start();
    let db = "t_chat_short";
    drop(setup(db, &llm));
    // The server's timeout for this database; sessions read it when they connect.
    connect(db, "postgres").batch_execute(&format!("ALTER DATABASE {db} SET docchat.chat_timeout = 400")).unwrap();
    let mut c = connect(db, "postgres");
    c.batch_execute(&format!(
        "SET docchat.chat_url = '{}'; SET docchat.chat_model = 'test-model'; SET docchat.chat_api_key = 'sk-test';
         SET docchat.chat_breaker_failures = 3; SET docchat.chat_breaker_cooldown = 2; SET ROLE t_chat_short_user",
        llm.url
    ))
    .unwrap();
    let ask = "'When is the launch?'";
    chat(&mut c, ask).unwrap(); // a success resets whatever earlier tests left
                                // The attack: five timeouts of the user's own making against a slow endpoint.
    c.batch_execute("SET docchat.chat_timeout = 100").unwrap();
    for _ in 0..5 {
        llm.queue(Reply { delay: Duration::from_millis(300), ..fake_llm::completion("late") });
        let (code, message, _) = fails(&mut c, ask);
        assert_eq!((code.as_str(), message.as_str()), ("58030", "docchat_chat: the chat endpoint did not answer within 100 ms"));
    }
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!((health["chat"]["breaker_open"].clone(), health["chat"]["consecutive_failures"].clone()), (json!(false), json!(0)));
    assert_eq!(chat(&mut c, ask).unwrap()["answer"], "ok");
    // The server's own timeout (ALTER DATABASE here) still counts: the endpoint is slow for everyone.
    c.batch_execute("RESET docchat.chat_timeout").unwrap();
    for _ in 0..3 {
        llm.queue(Reply { delay: Duration::from_millis(1500), ..fake_llm::completion("late") });
        assert_eq!(fails(&mut c, ask).1, "docchat_chat: the chat endpoint did not answer within 400 ms");
    }
    assert_eq!(fails(&mut c, ask).0, "55000");
    // Leave the cluster's breaker closed for the other tests.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(chat(&mut c, ask).unwrap()["answer"], "ok");
}

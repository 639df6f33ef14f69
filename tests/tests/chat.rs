//! docchat_chat_context: retrieval with follow-ups, merged overlapping chunks, the token budget,
//! numbered citations and the messages an OpenAI-compatible endpoint takes.
use docchat_tests::*;
use postgres::Client;
use serde_json::{json, Value};

const REPORT: &str = "Annual report 2023. Revenue grew by twelve percent to 4.2 million euros, driven by the new \
subscription product. Costs rose by five percent, mostly for staff. The company hired twenty engineers in Berlin. \
In 2024 the board expects revenue to grow by a further ten percent. The dividend stays at one euro per share. \
Risks include currency movements and a slower market for hardware.";

/// A report cut into small overlapping chunks, and an unrelated note.
fn corpus(name: &str) -> (Client, String) {
    let mut c = fresh_db(name);
    let id: String =
        c.query_one("SELECT docchat_ingest($1, 'report.txt', chunk_size => 120, chunk_overlap => 40)::text", &[&REPORT.as_bytes()]).unwrap().get(0);
    ingest(&mut c, b"Hiking club newsletter: the spring trip goes to the Alps. Bring boots and a rain jacket.", "hiking.txt").unwrap();
    (c, id)
}

fn context(c: &mut Client, message: &str, history: Value, k: i32, budget: i32) -> Value {
    let row = c
        .query_one("SELECT docchat_chat_context($1, $2::text::jsonb, $3, $4)::text", &[&message, &history.to_string(), &k, &budget])
        .unwrap_or_else(|e| panic!("{message}: {e}"));
    row.get::<_, String>(0).parse().unwrap()
}

#[test]
fn passages_are_merged_numbered_cited_and_within_budget() {
    let (mut c, id) = corpus("t_chat_context");
    let chunks: i64 = c.query_one("SELECT count(*) FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&id]).unwrap().get(0);
    assert!(chunks >= 5, "the report is cut into overlapping chunks ({chunks})");
    let text: Vec<char> = document_text(&mut c, &id).chars().collect();
    let ctx = context(&mut c, "How much did revenue grow?", json!([]), 8, 2000);
    let passages = ctx["context"].as_array().unwrap();
    assert!(!passages.is_empty());
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut prompt_context = String::from("Context:\n\n");
    for (i, p) in passages.iter().enumerate() {
        assert_eq!(p["n"], i + 1);
        let content = p["content"].as_str().unwrap();
        if p["document_id"] == id {
            // A merged passage is exactly a stretch of the document, and passages never overlap.
            let start = (0..text.len()).find(|&s| text[s..].iter().take(content.chars().count()).copied().eq(content.chars())).expect(content);
            let span = (start, start + content.chars().count());
            assert!(spans.iter().all(|&(a, b)| span.1 < a || b < span.0), "{span:?} overlaps {spans:?}");
            spans.push(span);
        }
        prompt_context += &format!("[{}] {}\n{content}\n\n", i + 1, p["filename"].as_str().unwrap());
    }
    assert!(passages.iter().any(|p| p["content"].as_str().unwrap().contains("Revenue grew by twelve percent to 4.2 million euros")));
    assert!(spans.iter().any(|&(a, b)| b - a > 120), "neighbouring chunks were merged: {spans:?}");
    assert_eq!(ctx["prompt"], format!("{prompt_context}Question: How much did revenue grow?"));
    let used = ctx["metadata"]["context_tokens"].as_i64().unwrap();
    assert_eq!(
        ctx["summary"],
        format!(
            "{} passage(s) from {} document(s), {used} of 2000 context tokens",
            passages.len(),
            if passages.iter().any(|p| p["filename"] == "hiking.txt") { 2 } else { 1 }
        )
    );
    assert_eq!(ctx["messages"][0]["role"], "system");
    assert_eq!(ctx["messages"][0]["content"], ctx["system"]);
    assert_eq!(ctx["messages"][1], json!({"role": "user", "content": ctx["prompt"]}));

    // A tight budget keeps fewer tokens; a budget below every passage keeps none.
    let tight = context(&mut c, "How much did revenue grow?", json!([]), 8, 30);
    assert!(tight["metadata"]["context_tokens"].as_i64().unwrap() <= 30);
    let none = context(&mut c, "How much did revenue grow?", json!([]), 8, 1);
    assert_eq!(none["context"], json!([]));
    assert_eq!(none["prompt"], "Context: no passage of the documents matches the question.\n\nQuestion: How much did revenue grow?");
    assert_eq!(none["summary"], "0 passage(s) from 0 document(s), 0 of 1 context tokens");
}

#[test]
fn follow_ups_are_retrieved_with_the_previous_question() {
    let (mut c, _) = corpus("t_chat_followup");
    let history = json!([
        {"role": "user", "content": "How much did revenue grow in 2023?"},
        {"role": "assistant", "content": "Twelve percent [1]."}
    ]);
    let ctx = context(&mut c, "and what about next year?", history.clone(), 4, 2000);
    assert_eq!(ctx["metadata"]["retrieval_query"], "How much did revenue grow in 2023?\nand what about next year?");
    assert_eq!(ctx["metadata"]["history_turns"], 2);
    assert!(
        ctx["context"].as_array().unwrap().iter().any(|p| p["content"].as_str().unwrap().contains("In 2024 the board expects revenue to grow")),
        "{ctx}"
    );
    assert!(ctx["prompt"].as_str().unwrap().contains(
        "Conversation so far:\nUser: How much did revenue grow in 2023?\nAssistant: Twelve percent [1].\n\nQuestion: and what about next year?"
    ));
    // The messages: system, the history as given, then the context and the question.
    let messages = ctx["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1..3], history.as_array().unwrap()[..]);
    let last = messages[3]["content"].as_str().unwrap();
    assert!(last.starts_with("Context:\n\n[1] report.txt\n") && last.ends_with("\n\nQuestion: and what about next year?"), "{last}");
    assert!(!last.contains("Conversation so far"));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (mut c, _) = corpus("t_chat_errors");
    for (history, k, budget, message) in [
        (
            json!({"role": "user"}),
            8,
            2000,
            "docchat_chat_context: history must be a JSON array of {\"role\": \"user\" | \"assistant\", \"content\": \"...\"} objects",
        ),
        (
            json!([{"role": "bot", "content": "hi"}]),
            8,
            2000,
            "docchat_chat_context: history must be a JSON array of {\"role\": \"user\" | \"assistant\", \"content\": \"...\"} objects",
        ),
        (
            json!([{"role": "user", "content": 3}]),
            8,
            2000,
            "docchat_chat_context: history must be a JSON array of {\"role\": \"user\" | \"assistant\", \"content\": \"...\"} objects",
        ),
        (json!([]), 0, 2000, "docchat_chat_context: k must be between 1 and 1000, got 0"),
        (json!([]), 8, 0, "docchat_chat_context: max_context_tokens must be positive, got 0"),
    ] {
        let err = c.query_one("SELECT docchat_chat_context('hi', $1::text::jsonb, $2, $3)", &[&history.to_string(), &k, &budget]).unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "{history}");
        assert_eq!(err.as_db_error().unwrap().message(), message);
    }
    let err = c.query_one("SELECT docchat_chat_context(' ')", &[]).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().message(), "docchat_chat_context: message is empty");
}

#[test]
fn chat_searches_with_the_callers_model_mode_filter_and_threshold() {
    let (mut c, id) = corpus("t_chat_options");
    let ask = |c: &mut Client, args: &str| -> Value {
        let row = c
            .query_one(&format!("SELECT docchat_chat_context('Bring boots to the Alps?', {args})::text"), &[])
            .unwrap_or_else(|e| panic!("{args}: {e}"));
        row.get::<_, String>(0).parse().unwrap()
    };
    let files = |ctx: &Value| -> Vec<String> {
        let mut f: Vec<String> = ctx["context"].as_array().unwrap().iter().map(|p| p["filename"].as_str().unwrap().to_string()).collect();
        f.dedup();
        f
    };
    // The filter keeps chat to the named document; without it the newsletter is the best match.
    assert_eq!(files(&ask(&mut c, "threshold => -1")).first().map(String::as_str), Some("hiking.txt"));
    let only_report = ask(&mut c, &format!("threshold => -1, filter => '{{\"document_ids\": [\"{id}\"]}}'"));
    assert_eq!(files(&only_report), ["report.txt"]);
    assert_eq!(only_report["metadata"]["filter"], json!({"document_ids": [id]}));
    // Keyword mode finds only chunks with the words; a threshold of 1 keeps no semantic hit.
    let keyword = ask(&mut c, "mode => 'keyword'");
    assert_eq!(files(&keyword), ["hiking.txt"]);
    assert_eq!(keyword["metadata"]["mode"], "keyword");
    assert_eq!(ask(&mut c, "mode => 'semantic', threshold => 1")["context"], json!([]));
    // The model is docchat_search's: one the documents were not embedded with finds nothing.
    let other = ask(&mut c, "model => 'all-MiniLM-L6-v2-fp32'");
    assert_eq!((other["context"].clone(), other["metadata"]["hits"].clone()), (json!([]), json!(0)));
    for (args, message) in [
        ("mode => 'fuzzy'", "docchat_chat_context: unknown mode 'fuzzy'"),
        ("threshold => 2", "docchat_chat_context: threshold must be between -1 and 1, got 2"),
        ("filter => '[1]'", "docchat_chat_context: filter must be a JSON object, got [1]"),
        ("model => 'nope'", "unknown embedding model \"nope\""),
    ] {
        let err = c.query_one(&format!("SELECT docchat_chat_context('hi', {args})"), &[]).unwrap_err();
        assert_eq!((sqlstate(&err).to_string(), err.as_db_error().unwrap().message()), ("22023".to_string(), message), "{args}");
    }
}

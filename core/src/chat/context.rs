//! The context an LLM needs to answer from the caller's documents: the retrieval query (with the
//! previous question, for follow-ups), search hits merged into passages, the token budget, the
//! numbered citations and the prompt in both shapes (one prompt text, or chat messages).
use crate::{DocError, ErrorKind};
use serde_json::{json, Map, Value};

const SYSTEM_PROMPT: &str = "You answer questions about the user's documents. Use only the numbered context passages. \
Cite the passages you use as [1], [2], ... right after the statement they support. \
If the passages do not contain the answer, say that the documents do not say.";

#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// The conversation so far: a JSON array of {"role": "user" | "assistant", "content": "..."},
/// oldest first. Only role and content are kept: nothing else the caller adds reaches the endpoint.
pub fn parse_history(history: &Value) -> Result<Vec<Turn>, DocError> {
    let bad = || {
        DocError::new(ErrorKind::InvalidArgument, r#"history must be a JSON array of {"role": "user" | "assistant", "content": "..."} objects"#).with_hint(
            r#"pass the earlier turns, oldest first, e.g. [{"role": "user", "content": "What is X?"}, {"role": "assistant", "content": "X is ..."}]"#,
        )
    };
    let turns = history.as_array().ok_or_else(bad)?;
    turns
        .iter()
        .map(|t| match (t.get("role").and_then(Value::as_str), t.get("content").and_then(Value::as_str)) {
            (Some(role @ ("user" | "assistant")), Some(content)) => Ok(Turn { role: role.into(), content: content.into() }),
            _ => Err(bad()),
        })
        .collect()
}

/// What is searched: the message, after the previous user turn so that follow-ups ("and in
/// 2023?") find what the conversation is about.
pub fn retrieval_query(message: &str, history: &[Turn]) -> String {
    match history.iter().rev().find(|t| t.role == "user") {
        Some(previous) => format!("{}\n{message}", previous.content),
        None => message.to_string(),
    }
}

/// One row of docchat_search.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub document_id: String,
    pub filename: Option<String>,
    pub page: Option<i32>,
    pub score: f64,
    pub content: String,
    pub char_start: i32,
    pub char_end: i32,
    pub n_tokens: i32,
}

/// A stretch of one document: hits that overlap or touch, scored by the best of them. tokens
/// counts a merged overlap twice (an upper bound).
#[derive(Clone, Debug, PartialEq)]
pub struct Passage {
    pub document_id: String,
    pub filename: Option<String>,
    pub page: Option<i32>,
    pub score: f64,
    pub content: String,
    pub char_end: i32,
    pub tokens: i64,
}

/// Hits in document order; a hit that overlaps or touches the previous one extends it.
pub fn merge(mut hits: Vec<Hit>) -> Vec<Passage> {
    hits.sort_by(|a, b| (&a.document_id, a.char_start, a.char_end).cmp(&(&b.document_id, b.char_start, b.char_end)));
    let mut passages: Vec<Passage> = Vec::new();
    for hit in hits {
        if let Some(p) = passages.last_mut().filter(|p| p.document_id == hit.document_id && hit.char_start <= p.char_end) {
            if hit.char_end > p.char_end {
                p.content.extend(hit.content.chars().skip((p.char_end - hit.char_start) as usize));
                p.char_end = hit.char_end;
            }
            p.score = p.score.max(hit.score);
            p.tokens += hit.n_tokens as i64;
            continue;
        }
        passages.push(Passage {
            document_id: hit.document_id,
            filename: hit.filename,
            page: hit.page,
            score: hit.score,
            content: hit.content,
            char_end: hit.char_end,
            tokens: hit.n_tokens as i64,
        });
    }
    passages
}

/// Up to k passages, best first, while their tokens fit the budget; a passage that does not
/// fit is skipped, a smaller later one may still fit.
pub fn within_budget(mut passages: Vec<Passage>, k: usize, max_tokens: i64) -> (Vec<Passage>, i64) {
    passages.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = Vec::new();
    let mut used = 0;
    for p in passages {
        if kept.len() < k && used + p.tokens <= max_tokens {
            used += p.tokens;
            kept.push(p);
        }
    }
    (kept, used)
}

pub struct Request<'a> {
    pub message: &'a str,
    pub history: &'a [Turn],
    pub k: usize,
    pub max_context_tokens: i64,
    /// Added to the result's metadata as given (the search options used).
    pub search: Map<String, Value>,
}

/// The result of docchat_chat_context: system, prompt, messages, context (the numbered
/// passages), summary and metadata.
pub fn build(req: &Request, hits: Vec<Hit>) -> Value {
    let n_hits = hits.len();
    let passages = merge(hits);
    let n_passages = passages.len();
    let (kept, used) = within_budget(passages, req.k, req.max_context_tokens);
    let mut context_text = String::new();
    let mut context = Vec::new();
    for (i, p) in kept.iter().enumerate() {
        let page = p.page.map(|n| format!(", page {n}")).unwrap_or_default();
        context_text += &format!("[{}] {}{page}\n{}\n\n", i + 1, p.filename.as_deref().unwrap_or("untitled"), p.content);
        context
            .push(json!({"n": i + 1, "document_id": p.document_id, "filename": p.filename, "page": p.page, "content": p.content, "score": p.score}));
    }
    let context_block = if kept.is_empty() {
        "Context: no passage of the documents matches the question.\n\n".to_string()
    } else {
        format!("Context:\n\n{context_text}")
    };
    let conversation: Vec<String> = req.history.iter().map(|t| format!("{}: {}", capitalized(&t.role), t.content)).collect();
    let conversation = if conversation.is_empty() { String::new() } else { format!("Conversation so far:\n{}\n\n", conversation.join("\n")) };
    let question = format!("Question: {}", req.message);
    let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    messages.extend(req.history.iter().map(|t| json!({"role": t.role, "content": t.content})));
    messages.push(json!({"role": "user", "content": format!("{context_block}{question}")}));
    let mut documents: Vec<&str> = kept.iter().map(|p| p.document_id.as_str()).collect();
    documents.sort_unstable();
    documents.dedup();
    let mut metadata = json!({
        "retrieval_query": retrieval_query(req.message, req.history),
        "k": req.k,
        "max_context_tokens": req.max_context_tokens,
        "context_tokens": used,
        "hits": n_hits,
        "passages": n_passages,
        "history_turns": req.history.len(),
    });
    metadata.as_object_mut().expect("an object").extend(req.search.clone());
    json!({
        "system": SYSTEM_PROMPT,
        "prompt": format!("{context_block}{conversation}{question}"),
        "messages": messages,
        "context": context,
        "summary": format!("{} passage(s) from {} document(s), {used} of {} context tokens", kept.len(), documents.len(), req.max_context_tokens),
        "metadata": metadata,
    })
}

fn capitalized(role: &str) -> String {
    let mut chars = role.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, start: i32, content: &str, score: f64) -> Hit {
        let end = start + content.chars().count() as i32;
        Hit {
            document_id: doc.into(),
            filename: Some(format!("{doc}.txt")),
            page: None,
            score,
            content: content.into(),
            char_start: start,
            char_end: end,
            n_tokens: 10,
        }
    }

    #[test]
    fn history_is_role_and_content_only() {
        let h = parse_history(&json!([{"role": "user", "content": "a", "extra": 1}, {"role": "assistant", "content": "b"}])).unwrap();
        assert_eq!(h, vec![Turn { role: "user".into(), content: "a".into() }, Turn { role: "assistant".into(), content: "b".into() }]);
        for bad in [json!({}), json!([{"role": "bot", "content": "x"}]), json!([{"role": "user", "content": 3}]), json!(["x"])] {
            let e = parse_history(&bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn follow_ups_search_with_the_previous_question() {
        let h = parse_history(&json!([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}])).unwrap();
        assert_eq!(retrieval_query("and then?", &h), "Q1\nand then?");
        assert_eq!(retrieval_query("Q", &[]), "Q");
    }

    #[test]
    fn overlapping_and_touching_hits_merge_others_do_not() {
        // "abcdef" at 0, "defghi" at 3 (overlap), "jkl" at 9 (touches), "xyz" at 20 (apart).
        let hits = vec![
            hit("d1", 20, "xyz", 0.1),
            hit("d1", 3, "defghi", 0.9),
            hit("d1", 0, "abcdef", 0.5),
            hit("d1", 9, "jkl", 0.2),
            hit("d2", 0, "abc", 0.3),
        ];
        let p = merge(hits);
        assert_eq!(
            p.iter().map(|p| (p.document_id.as_str(), p.content.as_str(), p.score, p.tokens)).collect::<Vec<_>>(),
            vec![("d1", "abcdefghijkl", 0.9, 30), ("d1", "xyz", 0.1, 10), ("d2", "abc", 0.3, 10)]
        );
        // A hit inside a passage adds its tokens and score, not text.
        let p = merge(vec![hit("d", 0, "abcdef", 0.2), hit("d", 1, "bc", 0.7)]);
        assert_eq!((p[0].content.as_str(), p[0].score, p[0].tokens), ("abcdef", 0.7, 20));
    }

    #[test]
    fn the_budget_skips_what_does_not_fit_and_keeps_k() {
        let mut big = merge(vec![hit("a", 0, "big", 0.9)]);
        big[0].tokens = 50;
        let passages = [big, merge(vec![hit("b", 0, "b", 0.8)]), merge(vec![hit("c", 0, "c", 0.7)])].concat();
        let (kept, used) = within_budget(passages.clone(), 8, 25);
        assert_eq!((kept.iter().map(|p| p.document_id.as_str()).collect::<Vec<_>>(), used), (vec!["b", "c"], 20));
        let (kept, used) = within_budget(passages, 1, 1000);
        assert_eq!((kept.len(), used), (1, 50));
    }

    #[test]
    fn prompt_and_messages() {
        let history = parse_history(&json!([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 [1]"}])).unwrap();
        let mut search = Map::new();
        search.insert("mode".into(), json!("hybrid"));
        let req = Request { message: "Q2", history: &history, k: 8, max_context_tokens: 100, search };
        let mut h = hit("d1", 0, "text one", 0.5);
        h.page = Some(3);
        let out = build(&req, vec![h, hit("d2", 0, "text two", 0.9)]);
        let context = "Context:\n\n[1] d2.txt\ntext two\n\n[2] d1.txt, page 3\ntext one\n\n";
        assert_eq!(out["prompt"], format!("{context}Conversation so far:\nUser: Q1\nAssistant: A1 [1]\n\nQuestion: Q2"));
        assert_eq!(out["messages"].as_array().unwrap().len(), 4);
        assert_eq!(out["messages"][3]["content"], format!("{context}Question: Q2"));
        assert_eq!(out["summary"], "2 passage(s) from 2 document(s), 20 of 100 context tokens");
        assert_eq!(out["context"][1], json!({"n": 2, "document_id": "d1", "filename": "d1.txt", "page": 3, "content": "text one", "score": 0.5}));
        assert_eq!(
            out["metadata"],
            json!({"retrieval_query": "Q1\nQ2", "k": 8, "max_context_tokens": 100, "context_tokens": 20,
                                           "hits": 2, "passages": 2, "history_turns": 2, "mode": "hybrid"})
        );
        let none = build(&Request { message: "Q", history: &[], k: 8, max_context_tokens: 1, search: Map::new() }, vec![hit("d", 0, "x", 0.5)]);
        assert_eq!(none["prompt"], "Context: no passage of the documents matches the question.\n\nQuestion: Q");
        assert_eq!(none["summary"], "0 passage(s) from 0 document(s), 0 of 1 context tokens");
    }
}

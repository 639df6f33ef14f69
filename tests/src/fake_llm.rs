//! A small OpenAI-compatible chat-completions server on loopback, for the tests of
//! docchat_chat: it records every request exactly as it arrived and answers with the replies a
//! test queued (status, body, delay), or with a plain completion when none is queued.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body))
    }
}

/// A 200 reply in the shape OpenAI's API gives.
pub fn completion(answer: &str) -> Reply {
    let body = serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "fake-model-0613",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    });
    Reply { status: 200, body: body.to_string(), delay: Duration::ZERO }
}

pub fn status(status: u16, body: &str) -> Reply {
    Reply { status, body: body.to_string(), delay: Duration::ZERO }
}

pub struct FakeLlm {
    /// The API base to configure, `http://127.0.0.1:<port>/v1`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    queued: Arc<Mutex<VecDeque<Reply>>>,
}

impl FakeLlm {
    pub fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (seen, queued) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(VecDeque::new())));
        let (s, q) = (seen.clone(), queued.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, q) = (s.clone(), q.clone());
                // One thread per connection: a delayed reply must not hold up the next request.
                std::thread::spawn(move || serve(stream, &s, &q));
            }
        });
        FakeLlm { url, seen, queued }
    }

    pub fn queue(&self, reply: Reply) {
        self.queued.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, queued: &Mutex<VecDeque<Reply>>) {
    let Some(request) = read_request(&stream) else { return };
    seen.lock().unwrap().push(request);
    let reply = queued.lock().unwrap().pop_front().unwrap_or_else(|| completion("ok"));
    std::thread::sleep(reply.delay);
    let head = format!(
        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let mut stream = stream;
    // The client may have given up (a timeout test): a failed write is expected then.
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(reply.body.as_bytes()));
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen { method, path, headers, body: String::from_utf8(body).ok()? })
}

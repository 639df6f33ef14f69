//! A session's side of the model worker: one connection per backend, kept between calls.
//! A broken connection (the worker restarted) is reopened and the request resent (up to 3 times);
//! while the worker is away the session waits up to docchat.worker_timeout, always
//! interruptible by query cancel and statement_timeout.
use crate::pg::error::serve_interrupts;
use crate::settings;
use docchat_core::serve::client::{CallError, Client};
use docchat_core::serve::wire::{Input, ModelKey, Request, Response};
use docchat_core::serve::SOCKET;
use docchat_core::{DocError, ErrorKind};
use parking_lot::Mutex;
use std::path::Path;
use std::time::{Duration, Instant};

static CONNECTION: Mutex<Option<Client>> = Mutex::new(None);

/// Texts per request: long inputs go as a stream of requests, so the worker can interleave
/// other sessions' queries and this session can stop between them.
pub const REQUEST_TEXTS: usize = 64;
/// A request whose worker keeps dying is not sent forever: it may be what kills it.
const MAX_RESENDS: usize = 3;

pub fn call(request: &Request) -> Result<Response, DocError> {
    call_within(request, settings::worker_timeout())
}

/// Like `call`, waiting at most `patience` for the worker to accept the connection.
pub fn call_within(request: &Request, patience: Duration) -> Result<Response, DocError> {
    let deadline = Instant::now() + patience;
    let mut resent = 0;
    loop {
        let taken = CONNECTION.lock().take();
        let mut client = match taken {
            Some(c) => c,
            None => connect(deadline)?,
        };
        // A cancel unwinds out of here, dropping (closing) the connection mid-request.
        let mut keep_waiting = || {
            serve_interrupts();
            false
        };
        match client.call(request, &mut keep_waiting) {
            Ok(response) => {
                *CONNECTION.lock() = Some(client);
                return Ok(response);
            }
            Err(CallError::Stopped) => unreachable!("keep_waiting never stops the call"),
            Err(CallError::Malformed(e)) => return Err(e),
            Err(CallError::Disconnected(e)) if resent == MAX_RESENDS => {
                return Err(DocError::new(
                    ErrorKind::WorkerUnavailable,
                    format!("the docchat model worker exited {} times during one request: {e}", resent + 1),
                )
                .with_hint("see the server log for why the worker exits; it restarts automatically"))
            }
            // A connection from before a worker restart, or the worker exited mid-request.
            Err(CallError::Disconnected(_)) => resent += 1,
        }
    }
}

fn connect(deadline: Instant) -> Result<Client, DocError> {
    loop {
        match Client::connect(Path::new(SOCKET)) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(DocError::new(ErrorKind::WorkerUnavailable, format!("cannot reach the docchat model worker: {e}")).with_hint(
                    "the worker starts with the server when docchat is in shared_preload_libraries; check the server log, \
                     or SET docchat.model_worker = off to embed in this session",
                ))
            }
            Err(_) => {
                serve_interrupts();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Embeds through the worker, REQUEST_TEXTS at a time.
pub fn embed(model: &ModelKey, texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    embed_inputs(model, texts.iter().map(|&t| t.into()).collect())
}

/// Embeds any kind of input through the worker, REQUEST_TEXTS at a time.
pub fn embed_inputs(model: &ModelKey, inputs: Vec<Input>) -> Result<Vec<Vec<f32>>, DocError> {
    let mut out = Vec::with_capacity(inputs.len());
    for part in inputs.chunks(REQUEST_TEXTS) {
        let request = Request::Embed { model: model.clone(), inputs: part.to_vec() };
        match call(&request)? {
            Response::Vectors(v) if v.len() == part.len() => out.extend(v),
            Response::Error(e) => return Err(e),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(out)
}

/// The worker's figures as JSON text.
pub fn stats_within(patience: Duration) -> Result<String, DocError> {
    match call_within(&Request::Stats, patience)? {
        Response::Stats(json) => Ok(json),
        Response::Error(e) => Err(e),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(r: &Response) -> DocError {
    let what = match r {
        Response::Vectors(v) => format!("{} vectors", v.len()),
        Response::Error(e) => e.message.clone(),
        Response::Stats(_) => "statistics".into(),
    };
    DocError::new(ErrorKind::ModelFailure, format!("unexpected answer from the model worker: {what}"))
}

//! Parsers run on a helper thread with a large stack: a hostile document that recurses deeply
//! (nested PDF arrays, XObjects) must not overflow the backend's own stack, and query cancel or
//! statement_timeout must stop a slow parse. The helper thread never touches Postgres: it sees
//! only the bytes and a cancel flag that the main thread sets when Postgres wants to interrupt,
//! or when the parse runs past docchat.parse_timeout (the bound on one document, for the
//! ingest workers too, which have no statement_timeout).
use crate::pg::error::{serve_interrupts, stop_requested};
use crate::settings;
use docchat_core::parse::{self, Ctx, Options, Parsed};
use docchat_core::{DocError, ErrorKind};
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const PARSER_STACK: usize = 512 << 20;
/// How long a parser may take to notice a cancel before the session is ended instead.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

pub fn parse_isolated(content: &[u8], filename: Option<&str>, mime: Option<&str>, options: Options) -> Result<Parsed, DocError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (bytes, filename, mime) = (content.to_vec(), filename.map(str::to_owned), mime.map(str::to_owned));
    let flag = cancel.clone();
    let spawned = docchat_core::threads::spawn(std::thread::Builder::new().name("docchat-parse".into()).stack_size(PARSER_STACK), move || {
        let interrupted = move || flag.load(Ordering::Relaxed);
        let mut ctx = Ctx::new(&options, &interrupted);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse::parse(&bytes, filename.as_deref(), mime.as_deref(), &mut ctx)))
            .unwrap_or_else(|_| {
                Err(DocError::new(ErrorKind::Corrupt, "the parser failed on this document")
                    .with_hint("the file is probably damaged; re-export it from the application that made it"))
            });
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        return Err(DocError::new(ErrorKind::TooLarge, format!("cannot start the parser thread: {e}")));
    }
    let (started, limit) = (Instant::now(), settings::parse_timeout());
    let mut timed_out = false;
    let mut cancelled_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Err(e)) if timed_out && e.kind == ErrorKind::Cancelled => {
                let limit = limit.map_or(0, |l| l.as_secs());
                return Err(DocError::new(ErrorKind::TooLarge, format!("reading the document took longer than docchat.parse_timeout ({limit} s)"))
                    .with_hint("a superuser may raise docchat.parse_timeout for documents this slow to read"));
            }
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(DocError::new(ErrorKind::Corrupt, "the parser stopped without a result")),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match cancelled_at {
            None if limit.is_some_and(|l| started.elapsed() > l) => {
                timed_out = true;
                cancel.store(true, Ordering::Relaxed);
                cancelled_at = Some(Instant::now());
            }
            None if stop_requested() => {
                cancel.store(true, Ordering::Relaxed);
                cancelled_at = Some(Instant::now());
            }
            None => {
                // If serving interrupts raises the cancel, the guard stops the parser on the way out.
                let stop_parser = StopOnUnwind(&cancel);
                serve_interrupts();
                std::mem::forget(stop_parser);
            }
            Some(t) if t.elapsed() > CANCEL_GRACE => {
                // The parser is stuck in a loop that never checks the flag: end this session
                // (the thread dies with the process) rather than leave it spinning.
                FATAL!("docchat: the document parser did not stop after a cancel; ending the session")
            }
            Some(_) => {}
        }
    }
}

struct StopOnUnwind<'a>(&'a AtomicBool);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

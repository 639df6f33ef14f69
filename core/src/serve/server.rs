//! The model worker's socket server: one small thread per connected backend reads requests,
//! queues them for the batcher thread and writes back its answers.
use super::batcher::{BatchConfig, BatchModel, Batcher, Job};
use super::stats::Stats;
use super::wire::{read_frame, write_frame, Input, ModelKey, ModelKind, Request, Response};
use crate::clip::preprocess::SIZE;
use crate::error::{DocError, ErrorKind, Result};
use parking_lot::Mutex;
use serde_json::Value;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Connection threads only move bytes; they need little stack.
const CONNECTION_STACK: usize = 256 << 10;

pub struct Server {
    pub stats: Arc<Stats>,
    /// Batch size and wait, changeable while serving.
    pub batch: Arc<Mutex<BatchConfig>>,
    /// Extra figures merged into every stats answer (device setting, runtime, …).
    pub info: Arc<Mutex<Value>>,
    batcher: JoinHandle<()>,
    jobs: Sender<Job>,
}

impl Server {
    /// Loads a model before anyone asks for it; a failure is reported to the first request.
    pub fn preload(&self, model: ModelKey) {
        let (reply, _ignored) = channel();
        self.stats.texts_queued(1);
        let warm_up = match model.kind {
            ModelKind::ClipImage => Input::Pixels(vec![0.0; 3 * SIZE * SIZE]),
            ModelKind::Sentence | ModelKind::ClipText => "warm-up".into(),
        };
        let _ = self.jobs.send(Job { model, inputs: vec![warm_up], reply, received: Instant::now() });
    }

    /// False once the batcher thread has stopped (it only stops if it panicked).
    pub fn alive(&self) -> bool {
        !self.batcher.is_finished()
    }
}

/// Binds `socket` (replacing a stale one) and starts serving; `load` builds a model from its
/// folder, on the batcher thread, the first time a request names it.
pub fn start<M, L>(socket: &Path, batch: BatchConfig, stats: Arc<Stats>, load: L) -> io::Result<Server>
where
    M: BatchModel + 'static,
    M::Item: 'static,
    L: FnMut(&ModelKey) -> Result<M> + Send + 'static,
{
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(socket)?;
    let batch = Arc::new(Mutex::new(batch));
    let info = Arc::new(Mutex::new(Value::Object(Default::default())));
    let (jobs, queue) = channel::<Job>();
    let batcher = {
        let (batch, stats) = (batch.clone(), stats.clone());
        std::thread::Builder::new().name("docchat-batcher".into()).spawn(move || Batcher::new(batch, load, stats).run(queue))?
    };
    {
        let (stats, info, jobs) = (stats.clone(), info.clone(), jobs.clone());
        std::thread::Builder::new().name("docchat-accept".into()).spawn(move || {
            for conn in listener.incoming().flatten() {
                let (jobs, stats, info) = (jobs.clone(), stats.clone(), info.clone());
                let spawned = std::thread::Builder::new()
                    .name("docchat-conn".into())
                    .stack_size(CONNECTION_STACK)
                    .spawn(move || serve_connection(conn, &jobs, &stats, &info));
                // Out of threads: dropping the connection makes the backend retry.
                drop(spawned);
            }
        })?;
    }
    Ok(Server { stats, batch, info, batcher, jobs })
}

fn serve_connection(mut conn: UnixStream, jobs: &Sender<Job>, stats: &Stats, info: &Mutex<Value>) {
    while let Ok(Some(frame)) = read_frame(&mut conn) {
        let response = match Request::decode(&frame) {
            Ok(Request::Embed { model, inputs }) => embed(jobs, stats, model, inputs),
            Ok(Request::Stats) => Response::Stats(stats.to_json(info.lock().clone()).to_string()),
            Err(e) => Response::Error(e),
        };
        if write_frame(&mut conn, &response.encode()).is_err() {
            return;
        }
    }
}

fn embed(jobs: &Sender<Job>, stats: &Stats, model: ModelKey, inputs: Vec<Input>) -> Response {
    let n = inputs.len();
    let (reply, answer) = channel();
    stats.texts_queued(n);
    if jobs.send(Job { model, inputs, reply, received: Instant::now() }).is_err() {
        stats.texts_left_queue(n);
        return Response::Error(batcher_gone());
    }
    match answer.recv() {
        Ok(Ok(vectors)) => Response::Vectors(vectors),
        Ok(Err(e)) => Response::Error(e),
        Err(_) => Response::Error(batcher_gone()),
    }
}

fn batcher_gone() -> DocError {
    DocError::new(ErrorKind::WorkerUnavailable, "the model worker's batcher stopped").with_hint("the worker restarts; retry the statement")
}

#[cfg(test)]
mod tests {
    //! A real server with the real model on a socket in a temporary folder.
    use super::*;
    use crate::embed::{model_tests::files, Embedder, RunOptions};
    use crate::serve::client::{CallError, Client};
    use crate::serve::models::WorkerModel;
    use std::path::PathBuf;
    use std::time::Duration;

    fn serve(dir: &Path) -> Server {
        let load = |key: &ModelKey| WorkerModel::load(key, &files().runtime, RunOptions::default());
        start(&dir.join("s.sock"), BatchConfig { max_batch: 8, max_wait: Duration::ZERO, max_tokens: 0 }, Arc::default(), load).unwrap()
    }

    fn model() -> ModelKey {
        ModelKey::sentence(files().model.parent().unwrap().to_string_lossy(), 256)
    }

    #[test]
    fn backends_get_the_same_vectors_as_a_local_model() {
        let tmp = tempdir("served");
        let server = serve(&tmp);
        let texts: Vec<String> = ["first text", "a second, longer text about ONNX", "東京"].map(String::from).to_vec();
        let local = Embedder::load(&files(), RunOptions::default()).unwrap().embed(&texts.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        // Several clients at once, each with its own answer.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (sock, texts, model) = (tmp.join("s.sock"), texts.clone(), model());
                std::thread::spawn(move || {
                    let mut c = Client::connect(&sock).unwrap();
                    let inputs = texts.iter().map(|t| t.as_str().into()).collect();
                    match c.call(&Request::Embed { model, inputs }, &mut || false).unwrap() {
                        Response::Vectors(v) => v,
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        for h in handles {
            for (got, want) in h.join().unwrap().iter().zip(&local) {
                let cos: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
                assert!(cos > 0.9999, "{cos}");
            }
        }
        let mut c = Client::connect(&tmp.join("s.sock")).unwrap();
        let Response::Stats(json) = c.call(&Request::Stats, &mut || false).unwrap() else { panic!() };
        let stats: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(stats["requests"], 4);
        assert_eq!(stats["texts"], 12);
        assert_eq!(stats["queue_depth"], 0);
        assert_eq!(stats["models"][0]["dimension"].as_u64(), None, "the loader here does not report models");
        // A model folder that does not exist is an error for that request only.
        let bad = c.call(&Request::Embed { model: ModelKey::sentence("/nonexistent", 256), inputs: vec!["x".into()] }, &mut || false).unwrap();
        assert!(matches!(bad, Response::Error(ref e) if e.kind == ErrorKind::ModelUnavailable), "{bad:?}");
        assert!(server.alive());
    }

    #[test]
    fn a_waiting_client_can_stop_and_a_vanished_server_is_a_disconnect() {
        let tmp = tempdir("stop");
        // A listener that accepts and never answers: the client must give up when asked.
        let listener = UnixListener::bind(tmp.join("mute.sock")).unwrap();
        let mut c = Client::connect(&tmp.join("mute.sock")).unwrap();
        let mut asked = 0;
        let started = Instant::now();
        let r = c.call(&Request::Stats, &mut || {
            asked += 1;
            asked == 3
        });
        assert!(matches!(r, Err(CallError::Stopped)), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The peer goes away (a connection never accepted is reset): a disconnect, not a hang.
        let mut c2 = Client::connect(&tmp.join("mute.sock")).unwrap();
        drop(listener);
        let r = c2.call(&Request::Stats, &mut || false);
        assert!(matches!(r, Err(CallError::Disconnected(_))), "{r:?}");
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("docchat-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

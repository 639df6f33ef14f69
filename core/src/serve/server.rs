//! The model worker's socket server: one small thread per connected backend reads requests,
//! queues them for a batcher thread (one per lane) and writes back its answers.
use super::batcher::{BatchConfig, BatchModel, Batcher, Job};
use super::stats::Stats;
use super::wire::{read_frame, write_frame, Input, ModelKey, ModelKind, Request, Response};
use crate::clip::preprocess::SIZE;
use crate::error::{DocError, ErrorKind, Result};
use crate::threads;
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

/// Which of the worker's two batchers runs a request. Single texts (search queries, one-chunk
/// documents) have their own, with their own copy of each model on one thread, so a query
/// never waits behind an ingest's runs; everything longer shares the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Queries,
    Bulk,
}

impl Lane {
    pub fn of(inputs: &[Input]) -> Lane {
        if inputs.len() == 1 {
            Lane::Queries
        } else {
            Lane::Bulk
        }
    }
}

/// Each lane's queue.
#[derive(Clone)]
struct Lanes {
    queries: Sender<Job>,
    bulk: Sender<Job>,
}

impl Lanes {
    fn to(&self, lane: Lane) -> &Sender<Job> {
        match lane {
            Lane::Queries => &self.queries,
            Lane::Bulk => &self.bulk,
        }
    }

    fn send(&self, job: Job) -> std::result::Result<(), std::sync::mpsc::SendError<Job>> {
        self.to(Lane::of(&job.inputs)).send(job)
    }
}

pub struct Server {
    pub stats: Arc<Stats>,
    /// Batch size and wait, changeable while serving.
    pub batch: Arc<Mutex<BatchConfig>>,
    /// Extra figures merged into every stats answer (device setting, runtime, …).
    pub info: Arc<Mutex<Value>>,
    batchers: Vec<JoinHandle<()>>,
    jobs: Lanes,
}

impl Server {
    /// Loads a model in both lanes before anyone asks for it; a failure is reported to the
    /// first request.
    pub fn preload(&self, model: ModelKey) {
        for lane in [Lane::Queries, Lane::Bulk] {
            let warm_up = match model.kind {
                ModelKind::ClipImage => Input::Pixels(vec![0.0; 3 * SIZE * SIZE]),
                ModelKind::Sentence | ModelKind::ClipText => "warm-up".into(),
            };
            let (reply, _ignored) = channel();
            self.stats.texts_queued(1);
            let _ = self.jobs.to(lane).send(Job { model: model.clone(), inputs: vec![warm_up], reply, received: Instant::now() });
        }
    }

    /// False once a batcher thread has stopped (one only stops if it panicked).
    pub fn alive(&self) -> bool {
        self.batchers.iter().all(|b| !b.is_finished())
    }
}

/// Binds `socket` (replacing a stale one) and starts serving; `load` builds a model from its
/// folder for a lane, on that lane's batcher thread, the first time a request there names it.
pub fn start<M, L>(socket: &Path, batch: BatchConfig, stats: Arc<Stats>, load: L) -> io::Result<Server>
where
    M: BatchModel + 'static,
    M::Item: 'static,
    L: Fn(&ModelKey, Lane) -> Result<M> + Send + Sync + 'static,
{
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(socket)?;
    let batch = Arc::new(Mutex::new(batch));
    let info = Arc::new(Mutex::new(Value::Object(Default::default())));
    let load = Arc::new(load);
    let mut batchers = Vec::new();
    let mut spawn_lane = |lane: Lane, name: &str| -> io::Result<Sender<Job>> {
        let (jobs, queue) = channel::<Job>();
        let (batch, stats, load) = (batch.clone(), stats.clone(), load.clone());
        let handle = threads::spawn(std::thread::Builder::new().name(name.into()), move || {
            Batcher::new(batch, move |key: &ModelKey| load(key, lane), stats).run(queue)
        })?;
        batchers.push(handle);
        Ok(jobs)
    };
    let jobs = Lanes { queries: spawn_lane(Lane::Queries, "docchat-queries")?, bulk: spawn_lane(Lane::Bulk, "docchat-batcher")? };
    {
        let (stats, info, jobs) = (stats.clone(), info.clone(), jobs.clone());
        // Connection threads inherit its mask: no signals.
        threads::spawn(std::thread::Builder::new().name("docchat-accept".into()), move || {
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
    Ok(Server { stats, batch, info, batchers, jobs })
}

fn serve_connection(mut conn: UnixStream, jobs: &Lanes, stats: &Stats, info: &Mutex<Value>) {
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

fn embed(jobs: &Lanes, stats: &Stats, model: ModelKey, inputs: Vec<Input>) -> Response {
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
        let load = |key: &ModelKey, _: Lane| WorkerModel::load(key, &files().runtime, RunOptions::default());
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
    fn a_query_is_answered_while_an_ingest_request_runs() {
        let tmp = tempdir("lanes");
        let _server = serve(&tmp);
        let passages: Vec<Input> = (0..1200)
            .map(|i| {
                format!("Passage {i} about the growth of owls, rivers and the orchard's apple trees in the delta, season after season.")
                    .as_str()
                    .into()
            })
            .collect();
        let sock = tmp.join("s.sock");
        let bulk = {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&sock).unwrap();
                let r = c.call(&Request::Embed { model: model(), inputs: passages }, &mut || false).unwrap();
                (matches!(r, Response::Vectors(ref v) if v.len() == 1200), Instant::now())
            })
        };
        // Until the bulk request is well under way: its texts are queued.
        let mut stats_client = Client::connect(&sock).unwrap();
        let started = Instant::now();
        loop {
            let Response::Stats(json) = stats_client.call(&Request::Stats, &mut || false).unwrap() else { panic!() };
            let stats: Value = serde_json::from_str(&json).unwrap();
            if stats["batches"].as_u64() >= Some(1) && stats["queue_depth"].as_u64() > Some(0) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the bulk request never started");
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut c = Client::connect(&sock).unwrap();
        let Response::Vectors(v) = c.call(&Request::Embed { model: model(), inputs: vec!["where do owls nest?".into()] }, &mut || false).unwrap()
        else {
            panic!()
        };
        let answered = Instant::now();
        let local = Embedder::load(&files(), RunOptions::default()).unwrap().embed(&["where do owls nest?"]).unwrap();
        let cos: f32 = v[0].iter().zip(&local[0]).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9999, "{cos}");
        let (bulk_ok, bulk_done) = bulk.join().unwrap();
        assert!(bulk_ok);
        assert!(answered < bulk_done, "the query waited for the whole ingest request");
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

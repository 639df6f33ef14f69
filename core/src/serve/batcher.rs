//! Dynamic batching: requests from every connection land in one queue; the batcher thread owns
//! the models and fills each ONNX run with texts from as many waiting requests as fit, taking
//! them round-robin so one long request cannot starve shorter ones behind it. A run can also be
//! capped in padded tokens. Search queries have a batcher of their own (server::Lane).
use super::stats::Stats;
use super::wire::{Input, ModelKey};
use crate::error::{DocError, ErrorKind, Result};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the batcher needs from a model: turn a text into an input, and run many inputs at once.
pub trait BatchModel {
    type Item;
    fn prepare(&self, input: &Input) -> Result<Self::Item>;
    /// Relative cost of an input (its length): inputs of similar cost share a run.
    fn cost(item: &Self::Item) -> usize;
    fn run(&mut self, items: &[&Self::Item]) -> Result<Vec<Vec<f32>>>;
}

pub type Reply = Sender<Result<Vec<Vec<f32>>>>;

/// One caller's request: inputs for one model, answered all at once.
pub struct Job {
    pub model: ModelKey,
    pub inputs: Vec<Input>,
    pub reply: Reply,
    pub received: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most texts in one ONNX run.
    pub max_batch: usize,
    /// How long a lone request waits for company. 0: never wait; requests that arrive while a
    /// batch runs are batched together anyway.
    pub max_wait: Duration,
    /// Most padded tokens (texts × the longest) in one run; 0: no cap. Bounds how long a query
    /// arriving during a run waits for it to end.
    pub max_tokens: usize,
}

struct Active<I> {
    model: ModelKey,
    items: Vec<I>,
    /// Indices of `items`, cheapest first, and how many of them were taken.
    order: Vec<usize>,
    taken: usize,
    out: Vec<Vec<f32>>,
    remaining: usize,
    reply: Reply,
    received: Instant,
}

pub struct Batcher<M: BatchModel, L> {
    config: Arc<Mutex<BatchConfig>>,
    load: L,
    models: HashMap<ModelKey, M>,
    active: VecDeque<Active<M::Item>>,
    stats: Arc<Stats>,
}

impl<M: BatchModel, L: FnMut(&ModelKey) -> Result<M>> Batcher<M, L> {
    pub fn new(config: Arc<Mutex<BatchConfig>>, load: L, stats: Arc<Stats>) -> Self {
        Batcher { config, load, models: HashMap::new(), active: VecDeque::new(), stats }
    }

    /// Serves jobs until every sender is gone.
    pub fn run(mut self, jobs: Receiver<Job>) {
        loop {
            let cfg = *self.config.lock();
            if self.active.is_empty() {
                let Ok(job) = jobs.recv() else { return };
                self.admit(job);
                let deadline = Instant::now() + cfg.max_wait;
                while self.waiting_texts() < cfg.max_batch {
                    match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(job) => self.admit(job),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            } else {
                while let Ok(job) = jobs.try_recv() {
                    self.admit(job);
                }
            }
            if !self.active.is_empty() {
                self.step(cfg.max_batch.max(1), cfg.max_tokens);
            }
        }
    }

    fn waiting_texts(&self) -> usize {
        self.active.iter().map(|a| a.order.len() - a.taken).sum()
    }

    fn admit(&mut self, job: Job) {
        if job.inputs.is_empty() {
            let _ = job.reply.send(Ok(Vec::new()));
            return;
        }
        if !self.models.contains_key(&job.model) {
            match catch_unwind(AssertUnwindSafe(|| (self.load)(&job.model))).unwrap_or_else(|_| Err(panicked("loading the model"))) {
                Ok(m) => {
                    self.models.insert(job.model.clone(), m);
                }
                Err(e) => return self.answer(job.reply, job.inputs.len(), job.received, Err(e)),
            }
        }
        let model = &self.models[&job.model];
        let items = match job.inputs.iter().map(|t| model.prepare(t)).collect::<Result<Vec<_>>>() {
            Ok(items) => items,
            Err(e) => return self.answer(job.reply, job.inputs.len(), job.received, Err(e)),
        };
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| M::cost(&items[i]));
        let n = items.len();
        self.active.push_back(Active {
            model: job.model,
            items,
            order,
            taken: 0,
            out: vec![Vec::new(); n],
            remaining: n,
            reply: job.reply,
            received: job.received,
        });
    }

    /// One ONNX run for the oldest request's model, filled round-robin from every request for
    /// the model, up to max_batch texts and max_tokens padded tokens (always at least one text).
    fn step(&mut self, max_batch: usize, max_tokens: usize) {
        let model_key = self.active[0].model.clone();
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(max_batch);
        let mut longest = 0;
        'fill: loop {
            let mut took = false;
            for (ai, a) in self.active.iter_mut().enumerate().filter(|(_, a)| a.model == model_key) {
                if a.taken == a.order.len() {
                    continue;
                }
                let cost = M::cost(&a.items[a.order[a.taken]]);
                let padded = (picks.len() + 1) * longest.max(cost);
                if picks.len() == max_batch || (!picks.is_empty() && max_tokens > 0 && padded > max_tokens) {
                    break 'fill;
                }
                picks.push((ai, a.order[a.taken]));
                longest = longest.max(cost);
                a.taken += 1;
                took = true;
            }
            if !took {
                break;
            }
        }
        let items: Vec<&M::Item> = picks.iter().map(|&(ai, ii)| &self.active[ai].items[ii]).collect();
        let model = self.models.get_mut(&model_key).expect("admitted jobs have their model loaded");
        let result = match catch_unwind(AssertUnwindSafe(|| model.run(&items))) {
            Ok(result) => result,
            Err(_) => {
                // Whatever state the model was left in is not trusted again.
                self.models.remove(&model_key);
                Err(panicked("embedding"))
            }
        };
        let result = result.and_then(|vs| {
            if vs.len() == picks.len() {
                Ok(vs)
            } else {
                Err(DocError::new(ErrorKind::ModelFailure, format!("model returned {} vectors for {} texts", vs.len(), picks.len())))
            }
        });
        match result {
            Ok(vectors) => {
                self.stats.batch_run(picks.len());
                self.stats.texts_left_queue(picks.len());
                for (&(ai, ii), v) in picks.iter().zip(vectors) {
                    self.active[ai].out[ii] = v;
                    self.active[ai].remaining -= 1;
                }
                self.finish(|_, a| a.remaining == 0, None);
            }
            Err(e) => self.finish(|i, _| picks.iter().any(|&(ai, _)| ai == i), Some(e)),
        }
    }

    /// Answers and removes the requests `done` selects: with their vectors, or with `error`.
    fn finish(&mut self, done: impl Fn(usize, &Active<M::Item>) -> bool, error: Option<DocError>) {
        let mut keep = VecDeque::with_capacity(self.active.len());
        for (i, a) in std::mem::take(&mut self.active).into_iter().enumerate() {
            if !done(i, &a) {
                keep.push_back(a);
                continue;
            }
            let n = a.remaining;
            let answer = match &error {
                Some(e) => Err(e.clone()),
                None => Ok(a.out),
            };
            self.answer(a.reply, n, a.received, answer);
        }
        self.active = keep;
    }

    fn answer(&self, reply: Reply, n: usize, received: Instant, result: Result<Vec<Vec<f32>>>) {
        self.stats.texts_left_queue(n);
        self.stats.request_done(received.elapsed(), result.is_ok());
        let _ = reply.send(result);
    }
}

fn panicked(what: &str) -> DocError {
    DocError::new(ErrorKind::ModelFailure, format!("the model worker panicked while {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    /// Embeds a text as [its length]; records the texts of every run.
    struct Lengths {
        runs: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl BatchModel for Lengths {
        type Item = String;
        fn prepare(&self, input: &Input) -> Result<String> {
            let Input::Text(text) = input else { unreachable!("the tests send texts") };
            if text == "untokenizable" {
                return Err(DocError::new(ErrorKind::ModelFailure, "cannot tokenize"));
            }
            Ok(text.to_string())
        }
        fn cost(item: &String) -> usize {
            item.len()
        }
        fn run(&mut self, items: &[&String]) -> Result<Vec<Vec<f32>>> {
            if items.iter().any(|t| *t == "boom") {
                panic!("model crashed");
            }
            self.runs.lock().push(items.iter().map(|s| s.to_string()).collect());
            Ok(items.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    fn job(model: &str, texts: &[&str]) -> (Job, Receiver<Result<Vec<Vec<f32>>>>) {
        let (reply, rx) = channel();
        let inputs: Vec<Input> = texts.iter().map(|&s| s.into()).collect();
        (Job { model: ModelKey::sentence(model, 16), inputs, reply, received: Instant::now() }, rx)
    }

    fn batcher(max_batch: usize, runs: &Arc<Mutex<Vec<Vec<String>>>>) -> Batcher<Lengths, impl FnMut(&ModelKey) -> Result<Lengths>> {
        let runs = runs.clone();
        let cfg = Arc::new(Mutex::new(BatchConfig { max_batch, max_wait: Duration::ZERO, max_tokens: 0 }));
        let load = move |key: &ModelKey| {
            if key.dir == "missing" {
                Err(DocError::new(ErrorKind::ModelUnavailable, "no such model"))
            } else {
                Ok(Lengths { runs: runs.clone() })
            }
        };
        Batcher::new(cfg, load, Arc::new(Stats::default()))
    }

    fn vectors(rx: &Receiver<Result<Vec<Vec<f32>>>>) -> Vec<f32> {
        rx.try_recv().expect("answered").expect("ok").into_iter().map(|v| v[0]).collect()
    }

    #[test]
    fn requests_share_runs_round_robin_and_get_their_own_answers_in_order() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let mut b = batcher(4, &runs);
        let (long, long_rx) = job("m", &["aaaaa", "a", "aaa", "aaaaaaa", "aa", "aaaaaa"]);
        let (other, other_rx) = job("m", &["ddd", "dd"]);
        let (one, one_rx) = job("m", &["bbbb"]);
        for j in [long, other, one] {
            b.stats.texts_queued(j.inputs.len());
            b.admit(j);
        }
        // Round-robin, each request's cheapest texts first.
        b.step(4, 0);
        assert_eq!(runs.lock()[0], vec!["a", "dd", "bbbb", "aa"]);
        assert_eq!(vectors(&one_rx), vec![4.0]);
        assert!(other_rx.try_recv().is_err() && long_rx.try_recv().is_err(), "not done yet");
        // A request that arrives meanwhile joins the next run.
        let (late, late_rx) = job("m", &["e"]);
        b.stats.texts_queued(1);
        b.admit(late);
        b.step(4, 0);
        assert_eq!(runs.lock()[1], vec!["aaa", "ddd", "e", "aaaaa"]);
        assert_eq!(vectors(&other_rx), vec![3.0, 2.0], "answers in the caller's order");
        assert_eq!(vectors(&late_rx), vec![1.0]);
        b.step(4, 0);
        assert_eq!(runs.lock()[2], vec!["aaaaaa", "aaaaaaa"]);
        assert_eq!(vectors(&long_rx), vec![5.0, 1.0, 3.0, 7.0, 2.0, 6.0], "answers in the caller's order");
        assert!(b.active.is_empty());
        let j = b.stats.to_json(serde_json::Value::Null);
        assert_eq!(j["queue_depth"], 0);
        assert_eq!((j["batches"].as_u64(), j["texts"].as_u64(), j["requests"].as_u64()), (Some(3), Some(10), Some(4)));
    }

    #[test]
    fn runs_stay_within_the_padded_token_cap_but_always_take_one_text() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let mut b = batcher(32, &runs);
        let (j, rx) = job("m", &["xxxx", "xxxx", "yyyyyyyyyyyy", "xxxx", "x"]);
        b.admit(j);
        // Padded cost is texts x the longest: "x" and "xxxx" make 2 x 4 = 8; a third would make 12.
        b.step(32, 10);
        assert_eq!(runs.lock()[0], vec!["x", "xxxx"]);
        b.step(32, 10);
        assert_eq!(runs.lock()[1], vec!["xxxx", "xxxx"]);
        // Longer than the cap on its own: it still runs.
        b.step(32, 10);
        assert_eq!(runs.lock()[2], vec!["yyyyyyyyyyyy"]);
        assert_eq!(vectors(&rx), vec![4.0, 4.0, 12.0, 4.0, 1.0]);
    }

    #[test]
    fn failures_reach_only_the_requests_they_concern() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let mut b = batcher(8, &runs);
        let (missing, missing_rx) = job("missing", &["x"]);
        let (bad, bad_rx) = job("m", &["fine", "untokenizable"]);
        let (empty, empty_rx) = job("m", &[]);
        let (other_model, other_rx) = job("n", &["zz"]);
        let (crash, crash_rx) = job("m", &["boom"]);
        let (ok, ok_rx) = job("m", &["fine"]);
        for j in [missing, bad, empty, other_model, crash, ok] {
            b.admit(j);
        }
        assert_eq!(missing_rx.try_recv().unwrap().unwrap_err().kind, ErrorKind::ModelUnavailable);
        assert_eq!(bad_rx.try_recv().unwrap().unwrap_err().message, "cannot tokenize");
        assert_eq!(empty_rx.try_recv().unwrap().unwrap(), Vec::<Vec<f32>>::new());
        // The oldest request is for model n: its run holds only model n's texts.
        b.step(8, 0);
        assert_eq!(vectors(&other_rx), vec![2.0]);
        // A panicking run fails the requests in it, and the model is reloaded for the next.
        b.step(8, 0);
        assert!(crash_rx.try_recv().unwrap().unwrap_err().message.contains("panicked"));
        assert!(ok_rx.try_recv().unwrap().is_err());
        let (again, again_rx) = job("m", &["fine"]);
        b.admit(again);
        b.step(8, 0);
        assert_eq!(vectors(&again_rx), vec![4.0]);
    }

    #[test]
    fn the_run_loop_serves_until_the_senders_are_gone() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let b = batcher(32, &runs);
        let (tx, rx) = channel();
        let handle = std::thread::spawn(move || b.run(rx));
        let mut answers = Vec::new();
        for i in 0..10 {
            let (j, r) = job("m", &[&"x".repeat(i + 1)]);
            tx.send(j).unwrap();
            answers.push(r);
        }
        for (i, r) in answers.iter().enumerate() {
            assert_eq!(r.recv().unwrap().unwrap(), vec![vec![(i + 1) as f32]]);
        }
        drop(tx);
        handle.join().unwrap();
    }
}

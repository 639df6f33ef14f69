//! What the model worker reports about itself: counters, recent request latencies, loaded models.
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latencies kept for the percentiles: the most recent requests.
const LATENCY_WINDOW: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadedModel {
    pub dir: String,
    pub dimension: usize,
    pub device: &'static str,
    pub load_ms: u64,
}

pub struct Stats {
    started: Instant,
    /// Texts accepted by a connection and not yet embedded or failed.
    queued_texts: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    batches: u64,
    texts: u64,
    requests: u64,
    failed_requests: u64,
    latencies_ms: VecDeque<f64>,
    models: Vec<LoadedModel>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { started: Instant::now(), queued_texts: AtomicU64::new(0), inner: Mutex::new(Inner::default()) }
    }
}

impl Stats {
    pub fn texts_queued(&self, n: usize) {
        self.queued_texts.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn texts_left_queue(&self, n: usize) {
        let _ = self.queued_texts.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| Some(q.saturating_sub(n as u64)));
    }

    pub fn batch_run(&self, size: usize) {
        let mut s = self.inner.lock();
        s.batches += 1;
        s.texts += size as u64;
    }

    pub fn request_done(&self, latency: Duration, ok: bool) {
        let mut s = self.inner.lock();
        s.requests += 1;
        if !ok {
            s.failed_requests += 1;
        }
        if s.latencies_ms.len() == LATENCY_WINDOW {
            s.latencies_ms.pop_front();
        }
        s.latencies_ms.push_back(latency.as_secs_f64() * 1000.0);
    }

    pub fn model_loaded(&self, m: LoadedModel) {
        let mut s = self.inner.lock();
        s.models.retain(|old| old.dir != m.dir);
        s.models.push(m);
    }

    pub fn to_json(&self, extra: Value) -> Value {
        let s = self.inner.lock();
        let mut sorted: Vec<f64> = s.latencies_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let mut v = json!({
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "queue_depth": self.queued_texts.load(Ordering::Relaxed),
            "batches": s.batches,
            "texts": s.texts,
            "mean_batch_size": if s.batches == 0 { 0.0 } else { round2(s.texts as f64 / s.batches as f64) },
            "requests": s.requests,
            "failed_requests": s.failed_requests,
            "latency_ms": {
                "window": sorted.len(),
                "p50": percentile(&sorted, 0.50).map(round2),
                "p95": percentile(&sorted, 0.95).map(round2),
            },
            "models": s.models.iter().map(|m| json!({
                "dir": m.dir, "dimension": m.dimension, "device": m.device, "load_ms": m.load_ms,
            })).collect::<Vec<_>>(),
        });
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn figures_add_up() {
        let s = Stats::default();
        s.batch_run(3);
        s.batch_run(1);
        s.request_done(Duration::from_millis(10), true);
        s.request_done(Duration::from_millis(30), false);
        let j = s.to_json(json!({"device": "cpu"}));
        assert_eq!(j["batches"], 2);
        assert_eq!(j["texts"], 4);
        assert_eq!(j["mean_batch_size"], 2.0);
        assert_eq!(j["requests"], 2);
        assert_eq!(j["failed_requests"], 1);
        assert_eq!(j["latency_ms"]["p50"], 10.0);
        assert_eq!(j["latency_ms"]["p95"], 30.0);
        assert_eq!(j["device"], "cpu");
    }
}

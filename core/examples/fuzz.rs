//! A mutation fuzzer for the format detector and every parser, on stable Rust (cargo-fuzz needs
//! a nightly toolchain, which these machines cannot fetch). It mutates seed files (bit flips,
//! byte runs, truncation, splices, duplicated ranges), runs `parse` on a thread with a deadline,
//! and reports inputs that panic out of the parser or run past the deadline; each is saved
//! under fuzz/findings/ for a regression test.
//!   cargo run --release -p docchat-core --example fuzz -- SECONDS SEED_FILE...
//! FUZZ_PASSWORD=... opens encrypted seeds, so mutations reach the decrypted contents.
use docchat_core::parse::{parse, Ctx, Options};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if v.is_empty() {
            v.push(0);
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = [0, 0xff, b'(', b'<', b'{', b'[', b'0', b'\\'][rng.below(8)],
            2 => v.truncate(at),
            3 => {
                let len = rng.below(64.min(v.len() - at));
                let chunk = v[at..at + len].to_vec();
                let to = rng.below(v.len());
                v.splice(to..to, chunk.iter().cycle().take(len * (1 + rng.below(50))).copied());
            }
            4 => {
                let end = (at + rng.below(256)).min(v.len());
                v.drain(at..end);
            }
            _ => v.insert(at, rng.next() as u8),
        }
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).expect("SECONDS SEED_FILE...");
    let seeds: Vec<(String, Vec<u8>)> = args[1..].iter().map(|p| (p.clone(), std::fs::read(p).expect("seed"))).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_input = Duration::from_secs(20);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut runs, mut findings) = (0u64, 0u32);
    std::fs::create_dir_all("fuzz/findings").unwrap();
    // Panics are the findings: keep the default message off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let (name, seed) = &seeds[rng.below(seeds.len())];
        let input = mutate(seed, &mut rng);
        let (tx, rx) = std::sync::mpsc::channel();
        let data = input.clone();
        std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn(move || {
                let options = Options { max_ocr_pages: 1, ocr_timeout_ms: 5000, password: std::env::var("FUZZ_PASSWORD").ok(), ..Default::default() };
                let mut ctx = Ctx::new(&options, &|| false);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&data, None, None, &mut ctx).map(|_| ())));
                let _ = tx.send(outcome.is_err());
            })
            .unwrap();
        runs += 1;
        let problem = match rx.recv_timeout(per_input) {
            Ok(true) => Some("panic"),
            Ok(false) => None,
            Err(_) => Some("hang"),
        };
        if let Some(kind) = problem {
            findings += 1;
            let path = format!("fuzz/findings/{kind}-{runs}-{}", std::path::Path::new(name).file_name().unwrap().to_string_lossy());
            std::fs::write(&path, &input).unwrap();
            eprintln!("{kind}: {path}");
        }
    }
    println!("{runs} inputs from {} seeds in {seconds} s: {findings} findings", seeds.len());
}

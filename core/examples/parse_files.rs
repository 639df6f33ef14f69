//! Parses files and prints one line each: format, pages, characters, OCR'd pages, time, or the error.
//! `cargo run --release -p docchat-core --example parse_files -- FILE... [--password PW]`
use docchat_core::parse::{parse, Ctx, Options};
use std::time::Instant;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options::default();
    if let Some(i) = args.iter().position(|a| a == "--password") {
        options.password = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
    }
    let verbose = std::env::var("VERBOSE").is_ok();
    for path in args {
        let bytes = std::fs::read(&path).expect("readable file");
        let name = std::path::Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
        let started = Instant::now();
        let mut ctx = Ctx::new(&options, &|| false);
        match parse(&bytes, Some(&name), None, &mut ctx) {
            Ok(p) => {
                let ocr = p.pages.iter().filter(|pg| pg.ocr).count();
                println!(
                    "{name}\t{}\tpages={}\tchars={}\tocr={ocr}\t{:.2}s",
                    p.format.name(),
                    p.pages.len(),
                    p.n_chars(),
                    started.elapsed().as_secs_f64()
                );
                if verbose {
                    println!("{}", serde_json::Value::Object(p.metadata));
                    for pg in &p.pages {
                        println!(
                            "--- page {:?} ocr={} headings={:?}\n{}",
                            pg.number,
                            pg.ocr,
                            pg.headings.iter().map(|h| &h.title).collect::<Vec<_>>(),
                            pg.text
                        );
                    }
                }
            }
            Err(e) => println!("{name}\tERROR {:?}\t{}\t{:.2}s", e.kind, e.message, started.elapsed().as_secs_f64()),
        }
    }
}

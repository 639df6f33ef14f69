//! CLIP's byte-level BPE tokenizer (OpenAI's simple_tokenizer.py, which open_clip and Hugging
//! Face's CLIPTokenizer reproduce): text cleaned, whitespace collapsed, lower-cased, split by
//! CLIP's pattern, each piece's UTF-8 bytes mapped to printable characters and merged by rank,
//! the last symbol of a word marked `</w>`. Input is <|startoftext|> … <|endoftext|>, 77 ids,
//! truncated with the end token kept last and padded with 0.
use crate::error::{DocError, ErrorKind, Result};
use regex::Regex;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

pub const CONTEXT_LENGTH: usize = 77;
/// The merges CLIP uses: the first 49152 - 256 - 2 lines after the header.
const MERGES: usize = 49152 - 256 - 2;
const PATTERN: &str = r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    whitespace: Regex,
    pub start: u32,
    pub end: u32,
}

/// GPT-2's reversible map from bytes to printable characters, in its own order: printable
/// bytes first (as themselves), then the rest (as 256, 257, …). The vocabulary follows this order.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut out: Vec<(u8, char)> = (0..256u32).filter(|&b| printable(b)).map(|b| (b as u8, char::from_u32(b).expect("latin-1"))).collect();
    let rest = (0..256u32).filter(|&b| !printable(b));
    out.extend(rest.zip(256u32..).map(|(b, c)| (b as u8, char::from_u32(c).expect("latin extended"))));
    out
}

fn bad_vocabulary(path: &Path, e: impl std::fmt::Display) -> DocError {
    DocError::new(ErrorKind::ModelUnavailable, format!("cannot load the CLIP tokenizer \"{}\": {e}", path.display()))
        .with_hint("docchat.clip_model_dir must hold CLIP's bpe_simple_vocab_16e6.txt.gz (open_clip, OpenAI CLIP) or merges.txt (Hugging Face)")
}

impl ClipTokenizer {
    /// From OpenAI's gzipped merges (bpe_simple_vocab_16e6.txt.gz) or Hugging Face's merges.txt:
    /// the same list after a header line.
    pub fn load(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).map_err(|e| bad_vocabulary(path, e))?;
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..]).take(16 << 20).read_to_string(&mut s).map_err(|e| bad_vocabulary(path, e))?;
            s
        } else {
            String::from_utf8(raw).map_err(|e| bad_vocabulary(path, e))?
        };
        let merges: Vec<(String, String)> =
            text.split('\n').skip(1).take(MERGES).filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
        if merges.len() != MERGES {
            return Err(bad_vocabulary(path, format!("{} merges, CLIP has {MERGES}", merges.len())));
        }
        Ok(Self::from_merges(merges))
    }

    fn from_merges(merges: Vec<(String, String)>) -> Self {
        let table = bytes_to_unicode();
        let mut byte_chars = ['\0'; 256];
        table.iter().for_each(|&(b, c)| byte_chars[b as usize] = c);
        let mut vocab: Vec<String> = table.iter().map(|(_, c)| c.to_string()).collect();
        vocab.extend(table.iter().map(|(_, c)| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let n = vocab.len() as u32;
        // Later duplicates win, as in Python's dict(zip(vocab, range(...))).
        let encoder = vocab.into_iter().zip(0..).collect();
        let ranks = merges.into_iter().zip(0..).collect();
        let pattern = Regex::new(PATTERN).expect("CLIP's pattern compiles");
        let whitespace = Regex::new(r"\s+").expect("compiles");
        ClipTokenizer { encoder, ranks, byte_chars, pattern, whitespace, start: n - 2, end: n - 1 }
    }

    /// Token ids of `text` without start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = super::text_clean::basic_clean(text);
        let cleaned = self.whitespace.replace_all(&cleaned, " ").trim().to_lowercase();
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let piece = m.as_str();
            if piece == "<|startoftext|>" || piece == "<|endoftext|>" {
                ids.push(self.encoder[piece]);
                continue;
            }
            let symbols: String = piece.bytes().map(|b| self.byte_chars[b as usize]).collect();
            ids.extend(self.bpe(&symbols).iter().map(|s| self.encoder[s.as_str()]));
        }
        ids
    }

    /// The model's input: start, ids, end, truncated to CONTEXT_LENGTH (end kept) and 0-padded.
    pub fn model_input(&self, text: &str) -> Vec<i64> {
        // Only the start of a long text can reach the 77 ids: a 10 MB one is not cleaned whole.
        let text = crate::embed::model_input(text, CONTEXT_LENGTH);
        let mut ids: Vec<i64> = std::iter::once(self.start).chain(self.encode(text)).chain([self.end]).map(i64::from).collect();
        ids.truncate(CONTEXT_LENGTH);
        *ids.last_mut().expect("start and end") = i64::from(self.end);
        ids.resize(CONTEXT_LENGTH, 0);
        ids
    }

    /// Merges the lowest-ranked adjacent pair, everywhere it occurs, until none is known.
    fn bpe(&self, symbols: &str) -> Vec<String> {
        let chars: Vec<char> = symbols.chars().collect();
        let mut word: Vec<String> = chars.iter().map(char::to_string).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0].clone(), p[1].clone())).map(|&r| (r, (p[0].clone(), p[1].clone()))))
                .min_by_key(|(r, _)| *r);
            let Some((_, (first, second))) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: "l o", "lo w</w>" merges.
    fn toy() -> ClipTokenizer {
        ClipTokenizer::from_merges(vec![("l".into(), "o".into()), ("lo".into(), "w</w>".into()), ("h".into(), "i</w>".into())])
    }

    #[test]
    fn merges_follow_rank_and_mark_word_ends() {
        let t = toy();
        assert_eq!(t.bpe("low"), vec!["low</w>"]);
        assert_eq!(t.bpe("lol"), vec!["lo", "l</w>"]);
        assert_eq!(t.bpe("x"), vec!["x</w>"]);
        // 512 single symbols, 3 merges, then the two special tokens.
        assert_eq!((t.start, t.end), (515, 516));
        // ',' and '!' are printable, so their ids are their place among the printable bytes.
        assert_eq!(t.encode("  HI,\tLow!  "), vec![514, 256 + 0x2c - 0x21, 513, 256]);
    }

    #[test]
    fn model_input_is_77_ids_with_the_end_token_kept() {
        let t = toy();
        let short = t.model_input("hi");
        assert_eq!(&short[..3], &[515, 514, 516]);
        assert!(short[3..].iter().all(|&i| i == 0));
        let long = t.model_input(&"hi ".repeat(200));
        assert_eq!(long.len(), CONTEXT_LENGTH);
        assert_eq!((long[0], long[76]), (515, 516));
        assert!(long[1..76].iter().all(|&i| i == 514));
    }
}

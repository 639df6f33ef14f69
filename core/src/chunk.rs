//! Pages → chunks that the embedding model reads whole.
//!
//! Sizes are counted in characters (the user-facing knob, as in the original system) and in
//! word-pieces of the embedding tokenizer (the hard bound: a chunk longer than the model's
//! sequence would be silently truncated). Cuts fall on paragraph, then sentence, then line,
//! then word boundaries; consecutive chunks overlap by up to `overlap_chars`, starting the
//! overlap at a sentence start where one fits.
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::Page;

#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    pub max_chars: usize,
    pub overlap_chars: usize,
    /// Word-pieces per chunk, excluding the model's special tokens.
    pub max_tokens: usize,
}

impl ChunkConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DocError::new(ErrorKind::InvalidArgument, m));
        if self.max_chars < 20 {
            return bad(format!("chunk_size must be at least 20 characters, got {}", self.max_chars));
        }
        if self.overlap_chars >= self.max_chars {
            return bad(format!("chunk_overlap ({}) must be smaller than chunk_size ({})", self.overlap_chars, self.max_chars));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be positive".into());
        }
        Ok(())
    }
}

/// One word-piece of the tokenizer: its byte span in the text, and whether a new word starts
/// there (only those are safe cut points: re-tokenizing a slice cut there gives the same pieces).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
    pub word_start: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub text: String,
    pub page: Option<u32>,
    /// Character offsets into the document text: the pages joined by blank lines.
    pub char_start: usize,
    pub char_end: usize,
    pub n_tokens: usize,
    /// The nearest heading at or before the chunk's start, where the format has headings.
    pub heading: Option<String>,
}

/// Separator between pages in the document text that chunk offsets refer to.
pub const PAGE_SEPARATOR: &str = "\n\n";

pub fn chunk_pages(pages: &[Page], cfg: &ChunkConfig, mut tokenize: impl FnMut(&str) -> Result<Vec<Piece>>) -> Result<Vec<Chunk>> {
    cfg.validate()?;
    let mut chunks = Vec::new();
    let mut base = 0;
    let mut heading: Option<&str> = None;
    for page in pages {
        let pieces = tokenize(&page.text)?;
        let mut headings = page.headings.iter().peekable();
        chunk_text(&page.text, &pieces, cfg, |byte_start, start, end, n_tokens| {
            while let Some(h) = headings.next_if(|h| h.offset <= byte_start) {
                heading = Some(&h.title);
            }
            let byte_end = byte_start + page.text[byte_start..].char_indices().nth(end - start).map_or(page.text.len() - byte_start, |(b, _)| b);
            chunks.push(Chunk {
                text: page.text[byte_start..byte_end].to_string(),
                page: page.number,
                char_start: base + start,
                char_end: base + end,
                n_tokens,
                heading: heading.map(str::to_owned),
            })
        });
        // Headings after the last chunk start still govern the next page.
        if let Some(h) = headings.last() {
            heading = Some(&h.title);
        }
        base += page.text.chars().count() + PAGE_SEPARATOR.len();
    }
    Ok(chunks)
}

/// How good a cut before piece `c` is: paragraph 3, sentence 2, line 1, word 0, none -1.
fn boundary_level(text: &str, pieces: &[Piece], c: usize) -> i8 {
    if c == 0 || c >= pieces.len() || !pieces[c].word_start {
        return -1;
    }
    let gap = &text[pieces[c - 1].end..pieces[c].start];
    let prev_last = text[pieces[c - 1].start..pieces[c - 1].end].chars().last();
    if gap.contains("\n\n") {
        3
    } else if matches!(prev_last, Some('.' | '!' | '?' | '。' | '！' | '？')) && !gap.is_empty() {
        2
    } else if gap.contains('\n') {
        1
    } else {
        0
    }
}

fn chunk_text(text: &str, pieces: &[Piece], cfg: &ChunkConfig, mut emit: impl FnMut(usize, usize, usize, usize)) {
    let n = pieces.len();
    if n == 0 {
        return;
    }
    // Character offset of every byte offset we will ask about.
    let mut char_at = vec![0usize; text.len() + 1];
    let mut count = 0;
    for (b, _) in text.char_indices() {
        char_at[b] = count;
        count += 1;
    }
    char_at[text.len()] = count;
    let span_chars = |s: usize, e: usize| char_at[pieces[e - 1].end] - char_at[pieces[s].start];

    let mut s = 0;
    loop {
        // Longest window from s within both bounds (always at least one piece).
        let mut e_max = s + 1;
        while e_max < n && e_max - s < cfg.max_tokens && span_chars(s, e_max + 1) <= cfg.max_chars {
            e_max += 1;
        }
        let c = if e_max == n { n } else { best_cut(text, pieces, s, e_max, &span_chars) };
        let (b0, b1) = (pieces[s].start, pieces[c - 1].end);
        emit(b0, char_at[b0], char_at[b1], c - s);
        if c == n {
            return;
        }
        s = overlap_start(text, pieces, s, c, cfg.overlap_chars, &span_chars);
    }
}

/// The cut in (s, e_max]: the strongest boundary in the second half of the window, latest first.
fn best_cut(text: &str, pieces: &[Piece], s: usize, e_max: usize, span_chars: &dyn Fn(usize, usize) -> usize) -> usize {
    let half = span_chars(s, e_max) / 2;
    let mut best: Option<(i8, usize)> = None;
    for c in (s + 1..=e_max).rev() {
        if span_chars(s, c) < half {
            break;
        }
        let level = boundary_level(text, pieces, c);
        if level >= 0 && best.is_none_or(|(l, _)| level > l) {
            best = Some((level, c));
        }
    }
    // No word boundary in the second half (a very long word or unspaced script): any word start, else the window end.
    best.map(|(_, c)| c).or_else(|| (s + 1..=e_max).rev().find(|&c| boundary_level(text, pieces, c) >= 0)).unwrap_or(e_max)
}

/// Where the next chunk starts so that it repeats at most `overlap` characters of this one.
fn overlap_start(text: &str, pieces: &[Piece], s: usize, c: usize, overlap: usize, span_chars: &dyn Fn(usize, usize) -> usize) -> usize {
    if overlap == 0 {
        return c;
    }
    let fits = |ns: usize| ns > s && span_chars(ns, c) <= overlap;
    let first_at = |min_level: i8| (s + 1..c).find(|&ns| fits(ns) && boundary_level(text, pieces, ns) >= min_level);
    first_at(2).or_else(|| first_at(0)).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whitespace tokenizer with punctuation split off: the shape of BERT's pre-tokenizer.
    fn words(text: &str) -> Result<Vec<Piece>> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, ch) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
            let is_punct = ch.is_ascii_punctuation();
            if ch.is_whitespace() || is_punct {
                if let Some(s0) = start.take() {
                    out.push(Piece { start: s0, end: i, word_start: true });
                }
                if is_punct {
                    out.push(Piece { start: i, end: i + 1, word_start: true });
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        Ok(out)
    }

    fn page(text: &str) -> Vec<Page> {
        vec![Page::new(Some(1), text.into())]
    }

    fn cfg(max_chars: usize, overlap_chars: usize, max_tokens: usize) -> ChunkConfig {
        ChunkConfig { max_chars, overlap_chars, max_tokens }
    }

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = chunk_pages(&page("Hello world."), &cfg(100, 20, 50), words).unwrap();
        assert_eq!(chunks, vec![Chunk { text: "Hello world.".into(), page: Some(1), char_start: 0, char_end: 12, n_tokens: 3, heading: None }]);
    }

    #[test]
    fn cuts_at_sentences_and_overlaps_whole_sentences() {
        let text = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu.";
        let chunks = chunk_pages(&page(text), &cfg(40, 20, 100), words).unwrap();
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["Alpha beta gamma. Delta epsilon zeta.", "Delta epsilon zeta. Eta theta iota.", "Eta theta iota. Kappa lambda mu."]);
        for c in &chunks {
            assert_eq!(&text.chars().skip(c.char_start).take(c.char_end - c.char_start).collect::<String>(), &c.text);
        }
    }

    #[test]
    fn token_bound_wins_over_char_bound() {
        let text = "a b c d e f g h i j";
        let chunks = chunk_pages(&page(text), &cfg(1000, 0, 4), words).unwrap();
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a b c d", "e f g h", "i j"]);
        assert!(chunks.iter().all(|c| c.n_tokens <= 4));
    }

    #[test]
    fn paragraphs_beat_sentences() {
        let text = "One two. Three four.\n\nFive six seven eight nine.";
        let chunks = chunk_pages(&page(text), &cfg(30, 0, 100), words).unwrap();
        assert_eq!(chunks[0].text, "One two. Three four.");
        assert_eq!(chunks[1].text, "Five six seven eight nine.");
    }

    #[test]
    fn offsets_span_pages_and_unicode() {
        let pages = vec![Page::new(Some(1), "Ünïcode ok.".into()), Page::new(Some(2), "Zwei.".into())];
        let chunks = chunk_pages(&pages, &cfg(100, 0, 100), words).unwrap();
        assert_eq!((chunks[0].char_start, chunks[0].char_end), (0, 11));
        assert_eq!((chunks[1].page, chunks[1].char_start, chunks[1].char_end), (Some(2), 13, 18));
    }

    #[test]
    fn unbreakable_text_is_cut_at_the_bound() {
        let text = "x".repeat(50);
        let pieces = |t: &str| -> Result<Vec<Piece>> { Ok((0..t.len()).map(|i| Piece { start: i, end: i + 1, word_start: i == 0 }).collect()) };
        let chunks = chunk_pages(&page(&text), &cfg(20, 5, 100), pieces).unwrap();
        assert!(chunks.iter().all(|c| c.text.len() <= 20));
        assert_eq!(chunks.iter().map(|c| c.text.len()).sum::<usize>(), 50);
    }

    #[test]
    fn chunks_carry_the_nearest_heading() {
        use crate::parse::Heading;
        let h = |offset, title: &str| Heading { offset, level: 1, title: title.into() };
        let mut first = Page::new(Some(1), "Intro. Alpha beta gamma delta. Methods. Epsilon zeta eta theta.".into());
        first.headings = vec![h(0, "Intro"), h(31, "Methods")];
        let second = Page::new(Some(2), "Iota kappa lambda mu nu.".into());
        let chunks = chunk_pages(&[first, second], &cfg(32, 0, 100), words).unwrap();
        let got: Vec<_> = chunks.iter().map(|c| (c.text.as_str(), c.heading.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("Intro. Alpha beta gamma delta.", Some("Intro")),
                ("Methods. Epsilon zeta eta theta.", Some("Methods")),
                ("Iota kappa lambda mu nu.", Some("Methods")),
            ]
        );
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(cfg(100, 100, 10).validate().unwrap_err().message, "chunk_overlap (100) must be smaller than chunk_size (100)");
        assert_eq!(cfg(5, 0, 10).validate().unwrap_err().kind, ErrorKind::InvalidArgument);
    }
}

//! BM25 over Postgres tsvectors: keyword search scores a chunk from its stored `fts` column
//! (read in place, no copy into a Rust structure) and the owner's corpus statistics.
//!
//! A tsvector's bytes after the varlena header (`TSVectorData` in PostgreSQL's ts_type.h):
//! `int32 size`, then `size` 4-byte `WordEntry`s (bit 0 haspos, bits 1-11 len, bits 12-31 pos,
//! as little-endian compilers lay out its bitfields), then the lexemes' bytes. An entry's
//! positions follow its lexeme at the next even offset: `uint16 npos`, then npos `uint16`s.
//! Lexemes are sorted by bytes, a prefix before its extensions.

pub mod candidates;

#[cfg(not(target_endian = "little"))]
compile_error!("the tsvector reader assumes a little-endian bitfield layout");

/// BM25's two parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub k1: f64,
    pub b: f64,
}

/// One query term: its lexeme and its idf in the owner's corpus.
pub struct Term<'a> {
    pub lexeme: &'a [u8],
    pub idf: f64,
}

/// Robertson–Spärck Jones idf, never negative (Lucene's form): ln(1 + (n - df + 0.5) / (df + 0.5)).
pub fn idf(n_chunks: u64, df: u64) -> f64 {
    let (n, df) = (n_chunks as f64, df.min(n_chunks) as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// A tsvector read in place.
pub struct TsVector<'a> {
    bytes: &'a [u8],
    size: usize,
}

struct Entry {
    has_positions: bool,
    len: usize,
    pos: usize,
}

impl<'a> TsVector<'a> {
    /// None when the bytes are not a well-formed tsvector.
    pub fn parse(bytes: &'a [u8]) -> Option<TsVector<'a>> {
        let size = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let v = TsVector { bytes, size };
        let strings = v.strings_offset()?;
        (strings <= bytes.len()).then_some(v)
    }

    fn strings_offset(&self) -> Option<usize> {
        self.size.checked_mul(4)?.checked_add(4)
    }

    fn entry(&self, i: usize) -> Entry {
        let at = 4 + 4 * i;
        let w = u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"));
        Entry { has_positions: w & 1 == 1, len: ((w >> 1) & 0x7ff) as usize, pos: (w >> 12) as usize }
    }

    fn lexeme(&self, e: &Entry) -> &'a [u8] {
        let start = 4 + 4 * self.size + e.pos;
        self.bytes.get(start..start + e.len).unwrap_or_default()
    }

    /// How often the entry's lexeme occurs: its number of positions (1 for a stripped entry).
    fn occurrences(&self, e: &Entry) -> u32 {
        if !e.has_positions {
            return 1;
        }
        let at = 4 + 4 * self.size + (e.pos + e.len).next_multiple_of(2);
        self.bytes.get(at..at + 2).map_or(1, |b| u16::from_le_bytes([b[0], b[1]]) as u32)
    }

    /// Distinct lexemes.
    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The text's length in lexeme occurrences (stop words are not in a tsvector).
    pub fn term_count(&self) -> u64 {
        (0..self.size).map(|i| self.occurrences(&self.entry(i)) as u64).sum()
    }

    /// How often the lexeme occurs (0 if it does not).
    pub fn frequency(&self, lexeme: &[u8]) -> u32 {
        let (mut lo, mut hi) = (0, self.size);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = self.entry(mid);
            let found = self.lexeme(&e);
            // tsCompareString: bytes of the common length, then the shorter first.
            let n = found.len().min(lexeme.len());
            match found[..n].cmp(&lexeme[..n]).then(found.len().cmp(&lexeme.len())) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.occurrences(&e),
            }
        }
        0
    }
}

/// The BM25 score of a chunk for the query's terms, given the corpus' mean length in lexeme
/// occurrences.
pub fn score(chunk: &TsVector, terms: &[Term], avg_terms: f64, p: Params) -> f64 {
    let norm = if avg_terms > 0.0 { 1.0 - p.b + p.b * chunk.term_count() as f64 / avg_terms } else { 1.0 };
    terms
        .iter()
        .map(|t| match chunk.frequency(t.lexeme) as f64 {
            0.0 => 0.0,
            tf => t.idf * tf * (p.k1 + 1.0) / (tf + p.k1 * norm),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes Postgres stores for a tsvector of (lexeme, positions) pairs, which must be
    /// given in tsvector order. An empty position list makes a stripped entry.
    fn tsvector(entries: &[(&str, &[u16])]) -> Vec<u8> {
        let mut words = Vec::new();
        let mut strings: Vec<u8> = Vec::new();
        for (lexeme, positions) in entries {
            let pos = strings.len() as u32;
            strings.extend_from_slice(lexeme.as_bytes());
            let has = !positions.is_empty();
            words.push((has as u32) | ((lexeme.len() as u32) << 1) | (pos << 12));
            if has {
                if strings.len() % 2 == 1 {
                    strings.push(0);
                }
                strings.extend_from_slice(&(positions.len() as u16).to_le_bytes());
                for p in *positions {
                    strings.extend_from_slice(&p.to_le_bytes());
                }
            }
        }
        let mut out = (entries.len() as u32).to_le_bytes().to_vec();
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn reads_frequencies_and_lengths_with_odd_lexeme_lengths_and_stripped_entries() {
        // to_tsvector('english', 'cat cats catalog dog dog dog bird'), plus a stripped "zebra".
        let bytes = tsvector(&[("bird", &[7]), ("cat", &[1, 2]), ("catalog", &[3]), ("dog", &[4, 5, 6]), ("zebra", &[])]);
        let v = TsVector::parse(&bytes).expect("well formed");
        assert_eq!(v.len(), 5);
        assert_eq!(v.term_count(), 2 + 3 + 1 + 1 + 1);
        assert_eq!(
            ["cat", "dog", "bird", "catalog", "zebra", "ca", "cats", "", "zz", "a"].map(|l| v.frequency(l.as_bytes())),
            [2, 3, 1, 1, 1, 0, 0, 0, 0, 0]
        );
        let empty = tsvector(&[]);
        let e = TsVector::parse(&empty).unwrap();
        assert!(e.is_empty());
        assert_eq!((e.term_count(), e.frequency(b"cat")), (0, 0));
    }

    #[test]
    fn malformed_bytes_are_refused_not_read_past_their_end() {
        assert!(TsVector::parse(&[]).is_none());
        assert!(TsVector::parse(&[9, 0, 0, 0, 1, 2]).is_none(), "9 entries cannot fit in 2 bytes");
        let bytes = tsvector(&[("dog", &[1, 2])]);
        // An entry pointing past the strings reads as an empty lexeme.
        let v = TsVector::parse(&bytes[..8]).unwrap();
        assert_eq!(v.frequency(b"dog"), 0);
    }

    #[test]
    fn bm25_matches_the_formula() {
        let p = Params { k1: 1.2, b: 0.75 };
        let bytes = tsvector(&[("cat", &[1, 2]), ("dog", &[3])]);
        let v = TsVector::parse(&bytes).unwrap();
        let (n, df_cat, df_dog) = (100u64, 10u64, 50u64);
        let terms =
            [Term { lexeme: b"cat", idf: idf(n, df_cat) }, Term { lexeme: b"dog", idf: idf(n, df_dog) }, Term { lexeme: b"eel", idf: idf(n, 1) }];
        let avg = 6.0;
        let norm = 1.0 - 0.75 + 0.75 * 3.0 / avg;
        let want = (1.0f64 + 90.5 / 10.5).ln() * 2.0 * 2.2 / (2.0 + 1.2 * norm) + (1.0f64 + 50.5 / 50.5).ln() * 2.2 / (1.0 + 1.2 * norm);
        assert!((score(&v, &terms, avg, p) - want).abs() < 1e-12);
        // k1 = 0: presence only; b = 0: no length normalisation.
        let presence = score(&v, &terms, avg, Params { k1: 0.0, b: 0.0 });
        assert!((presence - terms[0].idf - terms[1].idf).abs() < 1e-12);
        assert!(idf(5, 5) > 0.0 && idf(5, 9) == idf(5, 5), "df is capped at n and idf stays positive");
    }
}

//! docchat_search's Rust halves: the settings it runs with, read from the library that defines
//! them (so no default is repeated in SQL), and BM25 over the stored tsvectors.
use crate::settings;
use docchat_core::bm25::{self, Params, Term, TsVector};
use pgrx::prelude::*;

#[pg_schema]
mod docchat {
    use pgrx::prelude::*;

    /// One row; log_searches is false on a hot standby, which cannot write the log.
    #[pg_extern(stable, parallel_safe)]
    fn search_settings() -> TableIterator<
        'static,
        (name!(keyword_weight, f64), name!(exact_search_limit, i32), name!(log_searches, bool), name!(bm25_k1, f64), name!(bm25_b, f64)),
    > {
        let s = super::settings::search();
        TableIterator::once((s.keyword_weight, s.exact_search_limit, super::searches_logged(), s.bm25_k1, s.bm25_b))
    }
}

/// docchat.log_searches, except on a hot standby, which cannot write the log.
pub fn searches_logged() -> bool {
    settings::search().log_searches && !crate::pg::standby::is_standby()
}

// Declared in sql/search.sql with a tsvector argument: a tsvector is a varlena, whose bytes
// after the header are what `&[u8]` receives (detoasted).

/// `docchat.fts_length(tsvector)`: a chunk's length for BM25, in lexeme occurrences.
#[pg_extern(sql = false)]
pub fn fts_length(fts: &[u8]) -> i32 {
    TsVector::parse(fts).map_or(0, |v| v.term_count().min(i32::MAX as u64) as i32)
}

/// `docchat.bm25_score(fts, lexemes, idf, avg_terms, k1, b)`: the chunk's BM25 score for the
/// query's lexemes with their idf in the owner's corpus.
#[pg_extern(sql = false)]
pub fn bm25_score(fts: &[u8], lexemes: Array<&str>, idf: Array<f64>, avg_terms: f64, k1: f64, b: f64) -> f64 {
    let Some(chunk) = TsVector::parse(fts) else { return 0.0 };
    let terms: Vec<Term> = lexemes.iter().zip(idf.iter()).filter_map(|(l, i)| Some(Term { lexeme: l?.as_bytes(), idf: i? })).collect();
    bm25::score(&chunk, &terms, avg_terms, Params { k1, b })
}

//! docchat_search's Rust halves: the settings it runs with, read from the library that defines
//! them (so no default is repeated in SQL), and BM25 over the stored tsvectors.
use crate::settings;
use docchat_core::bm25::{self, candidates, Params, Term, TsVector};
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

/// A query term as SQL passes it: its configuration, lexeme, idf and df.
struct QueryTerm {
    config: String,
    lexeme: String,
    idf: f64,
    df: i64,
}

/// Parallel arrays of query terms; an element with a NULL is skipped.
fn query_terms(configs: Array<&str>, lexemes: Array<&str>, idf: Array<f64>, df: Option<Array<i64>>) -> Vec<QueryTerm> {
    let dfs: Vec<Option<i64>> = df.map_or_else(|| vec![Some(0); idf.len()], |d| d.iter().collect());
    let rows = configs.iter().zip(lexemes.iter()).zip(idf.iter()).zip(dfs);
    rows.filter_map(|(((c, l), i), d)| Some(QueryTerm { config: c?.to_owned(), lexeme: l?.to_owned(), idf: i?, df: d? })).collect()
}

/// The terms in groups, one per text search configuration, with the group's chunk count (from
/// any term's idf and df: idf = ln(1 + (n − df + 0.5) / (df + 0.5))). A term's weight is
/// `scale` × idf and its share of chunks e^−idf.
fn term_groups(terms: &[QueryTerm], scale: f64) -> Vec<(&str, Vec<candidates::Term<'_>>, f64)> {
    let mut groups: Vec<(&str, Vec<candidates::Term>, f64)> = Vec::new();
    for t in terms {
        let term = candidates::Term { lexeme: &t.lexeme, weight: scale * t.idf, share: (-t.idf).exp() };
        match groups.iter_mut().find(|g| g.0 == t.config) {
            Some(g) => g.1.push(term),
            None => groups.push((&t.config, vec![term], (t.df as f64 + 0.5) * t.idf.exp() - 1.0)),
        }
    }
    groups
}

/// `docchat.keyword_candidates(ts_configs, lexemes, idf, scale, threshold)`: per configuration,
/// tsqueries whose union holds every chunk whose terms' weights (scale × idf) sum to at least
/// the threshold.
#[pg_extern(sql = false)]
pub fn keyword_candidates(
    configs: Array<&str>,
    lexemes: Array<&str>,
    idf: Array<f64>,
    scale: f64,
    threshold: f64,
) -> TableIterator<'static, (name!(ts_config, String), name!(query, String))> {
    let terms = query_terms(configs, lexemes, idf, None);
    let rows: Vec<(String, String)> = term_groups(&terms, scale)
        .into_iter()
        .flat_map(|(config, terms, _)| candidates::queries(&terms, threshold).into_iter().map(move |q| (config.to_owned(), q)))
        .collect();
    TableIterator::new(rows)
}

/// `docchat.keyword_threshold(ts_configs, lexemes, idf, df, matches)`: the lowest threshold (in
/// idf) whose candidates are expected to be at most `matches` chunks, terms taken as independent.
#[pg_extern(sql = false)]
pub fn keyword_threshold(configs: Array<&str>, lexemes: Array<&str>, idf: Array<f64>, df: Array<i64>, matches: f64) -> f64 {
    let terms = query_terms(configs, lexemes, idf, Some(df));
    let groups: Vec<(Vec<candidates::Term>, f64)> = term_groups(&terms, 1.0).into_iter().map(|(_, t, n)| (t, n)).collect();
    candidates::threshold_for_count(&groups, matches)
}

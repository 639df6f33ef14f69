//! The settings docchat_search (SQL) runs with, read from the library that defines them, so no
//! default is repeated in SQL and a session that has not loaded the library yet gets the same.
use crate::settings;
use pgrx::prelude::*;

#[pg_schema]
mod docchat {
    use pgrx::prelude::*;

    /// One row; log_searches is false on a hot standby, which cannot write the log.
    #[pg_extern(stable, parallel_safe)]
    fn search_settings() -> TableIterator<'static, (name!(keyword_weight, f64), name!(exact_search_limit, i32), name!(log_searches, bool))> {
        let s = super::settings::search();
        TableIterator::once((s.keyword_weight, s.exact_search_limit, super::searches_logged()))
    }
}

/// docchat.log_searches, except on a hot standby, which cannot write the log.
pub fn searches_logged() -> bool {
    settings::search().log_searches && !crate::pg::standby::is_standby()
}

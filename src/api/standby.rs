//! docchat.refuse_writes_on_standby(): the standby check for the SQL-language writers.

use pgrx::prelude::*;

#[pg_schema]
mod docchat {
    use pgrx::prelude::*;

    /// For the SQL-language writers (docchat_delete).
    #[pg_extern(volatile, parallel_safe)]
    fn refuse_writes_on_standby(what: &str) {
        crate::pg::standby::refuse_writes(what)
    }
}

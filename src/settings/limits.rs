//! Resource limits. Anyone may lower one for a session; only the server's configuration, a
//! superuser, or a superuser's ALTER ROLE/DATABASE SET may raise it (see check_limit).
use super::*;
use pgrx::guc::{GucContext, GucFlags, GucSetting};

struct Limit {
    name: &'static CStr,
    short: &'static CStr,
    setting: &'static GucSetting<i32>,
    max: i32,
    unit: GucFlags,
    /// 0 means "no limit" (the timeouts), so it counts as above any other value.
    zero_is_none: bool,
}

const fn limit(name: &'static CStr, short: &'static CStr, setting: &'static GucSetting<i32>, max: i32) -> Limit {
    Limit { name, short, setting, max, unit: GucFlags::empty(), zero_is_none: false }
}

const LIMITS: [Limit; 7] = [
    Limit { unit: GucFlags::UNIT_MB, ..limit(c"docchat.max_document_size", c"Largest document docchat_ingest accepts.", &MAX_DOCUMENT_MB, 1024) },
    limit(c"docchat.max_pages", c"Most pages (or slides, sheets) a document may have.", &MAX_PAGES, 1_000_000),
    Limit {
        unit: GucFlags::UNIT_MB,
        ..limit(
            c"docchat.max_decompressed_size",
            c"Most a document's compressed parts may expand to (zip bombs stop here).",
            &MAX_DECOMPRESSED_MB,
            65_536,
        )
    },
    limit(c"docchat.max_ocr_pages", c"Most pages of one document that go through OCR.", &MAX_OCR_PAGES, 1_000_000),
    Limit {
        unit: GucFlags::UNIT_MS,
        zero_is_none: true,
        ..limit(c"docchat.ocr_page_timeout", c"Most time OCR may spend on one page (0: no limit).", &OCR_PAGE_TIMEOUT_MS, 3_600_000)
    },
    limit(c"docchat.max_images", c"Most pictures stored from one document; 0 turns picture extraction off.", &MAX_IMAGES, 100_000),
    Limit {
        unit: GucFlags::UNIT_S,
        zero_is_none: true,
        ..limit(c"docchat.parse_timeout", c"Most time reading one document may take, OCR included (0: no limit).", &PARSE_TIMEOUT_S, 86_400)
    },
];

fn define_limit<const I: usize>() {
    let l = &LIMITS[I];
    // SAFETY: static strings and setting; called from _PG_init.
    unsafe {
        pg_sys::DefineCustomIntVariable(
            l.name.as_ptr(),
            l.short.as_ptr(),
            c"Users may lower it; raising it takes a superuser (postgresql.conf, ALTER SYSTEM, or ALTER ROLE/DATABASE ... SET by a superuser)."
                .as_ptr(),
            l.setting.as_ptr(),
            l.setting.get(),
            0,
            l.max,
            GucContext::Userset as isize as _,
            l.unit.bits(),
            Some(check_limit::<I>),
            None,
            None,
        )
    }
}

/// The GUC table's entry of one of docchat's int settings.
pub(super) fn int_option(name: &CStr) -> Option<*mut pg_sys::config_int> {
    // SAFETY: find_option only reads the GUC table; the type is checked before the cast.
    unsafe {
        let option = pg_sys::find_option(name.as_ptr(), false, true, pg_sys::DEBUG1 as i32);
        (!option.is_null() && (*option).vartype == pg_sys::config_type::PGC_INT).then(|| option.cast())
    }
}

/// A value above the session's reset value (what the server and a superuser configured) is
/// refused unless a superuser sets it.
unsafe extern "C-unwind" fn check_limit<const I: usize>(
    newval: *mut i32,
    _extra: *mut *mut std::ffi::c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // Settings from the configuration files and from pg_db_role_setting (validated against
    // the privileges of whoever stored them) are trusted.
    if source <= pg_sys::GucSource::PGC_S_DATABASE_USER || pg_sys::superuser() {
        return true;
    }
    let l = &LIMITS[I];
    let Some(option) = int_option(l.name) else { return false };
    let ceiling = (*option).reset_val;
    let rank = |v: i32| if l.zero_is_none && v == 0 { i64::MAX } else { v as i64 };
    if rank(*newval) <= rank(ceiling) {
        return true;
    }
    let detail = CString::new(format!("{} is {ceiling} here; only a superuser may raise it", l.name.to_string_lossy())).expect("no NUL");
    pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr());
    false
}

pub(super) fn define() {
    define_limit::<0>();
    define_limit::<1>();
    define_limit::<2>();
    define_limit::<3>();
    define_limit::<4>();
    define_limit::<5>();
    define_limit::<6>();
}

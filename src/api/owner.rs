//! `docchat.current_owner()`: who the caller is, as docchat's `owner` columns record it. It is
//! the session's role (after SET ROLE), not a security-definer function's owner, so docchat's
//! write functions can run with definer rights and still store and filter by the caller. The
//! rules (JWT roles, `jwt:<sub>`) are `docchat_core::owner`.
use crate::pg::error::raise;
use crate::settings;
use docchat_core::owner::owner_of;
use pgrx::prelude::*;
use std::ffi::CStr;

/// Created by the schema script, before the tables whose defaults and policies use it.
#[pg_extern(sql = false)]
pub fn current_owner() -> String {
    // SAFETY: main thread, in a transaction; the outer user is the session's current role.
    let role = unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetOuterUserId(), false)).to_string_lossy().into_owned() };
    owner_of(&role, &settings::jwt_roles(), setting(c"request.jwt.claims").as_deref(), setting(c"request.jwt.claim.sub").as_deref())
        .unwrap_or_else(|e| raise(e, None))
}

fn setting(name: &CStr) -> Option<String> {
    // SAFETY: a NUL-terminated name; NULL comes back for a setting nobody has set.
    unsafe {
        let value = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned())
    }
}

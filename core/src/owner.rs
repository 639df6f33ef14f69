//! The owner of a caller's rows. A role named as a JWT role (PostgREST's `authenticated`) is a
//! gateway for many users, each owning rows as `jwt:<sub>`; every other role owns rows under its
//! own name, whatever claims it sets. The prefix keeps the two namespaces apart.
use crate::{DocError, ErrorKind};

pub const JWT_PREFIX: &str = "jwt:";

/// `role`: the session's role; `jwt_roles`: the roles whose claims count; `claims`: the
/// `request.jwt.claims` JSON; `claim_sub`: the older per-claim `request.jwt.claim.sub`.
pub fn owner_of(role: &str, jwt_roles: &[String], claims: Option<&str>, claim_sub: Option<&str>) -> Result<String, DocError> {
    if !jwt_roles.iter().any(|r| r == role) {
        if role.starts_with(JWT_PREFIX) {
            return Err(DocError::new(
                ErrorKind::Forbidden,
                format!("role \"{role}\" cannot own documents: owners starting with \"{JWT_PREFIX}\" are JWT subjects"),
            )
            .with_hint("rename the role, or list it in docchat.jwt_roles if it serves JWTs"));
        }
        return Ok(role.to_string());
    }
    let from_claims = claims
        .filter(|c| !c.trim().is_empty())
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c.get("sub").and_then(|s| s.as_str().map(str::to_owned)));
    match from_claims.or_else(|| claim_sub.map(str::to_owned)).filter(|s| !s.trim().is_empty()) {
        Some(sub) => Ok(format!("{JWT_PREFIX}{sub}")),
        None => Err(DocError::new(
            ErrorKind::Forbidden,
            format!("role \"{role}\" is a JWT role (docchat.jwt_roles), but request.jwt.claims has no \"sub\""),
        )
        .with_hint("a JWT role acts for the token's subject: send a token with a non-empty string sub claim")),
    }
}

/// docchat.jwt_roles: role names separated by commas (spaces around them ignored).
pub fn parse_role_list(setting: &str) -> Vec<String> {
    setting.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Vec<String> {
        parse_role_list(" authenticated , api_user,,")
    }

    #[test]
    fn role_list_is_trimmed() {
        assert_eq!(roles(), ["authenticated", "api_user"]);
        assert!(parse_role_list("").is_empty());
    }

    #[test]
    fn other_roles_ignore_claims() {
        assert_eq!(owner_of("alice", &roles(), Some(r#"{"sub":"bob"}"#), Some("bob")).unwrap(), "alice");
        assert_eq!(owner_of("alice", &[], None, None).unwrap(), "alice");
    }

    #[test]
    fn jwt_roles_own_as_their_subject() {
        assert_eq!(owner_of("authenticated", &roles(), Some(r#"{"sub":"u-1","role":"authenticated"}"#), None).unwrap(), "jwt:u-1");
        // A subject that is a login role's name stays in the JWT namespace.
        assert_eq!(owner_of("api_user", &roles(), Some(r#"{"sub":"alice"}"#), None).unwrap(), "jwt:alice");
        // The older per-claim setting, when the JSON has none.
        assert_eq!(owner_of("authenticated", &roles(), Some(""), Some("u-2")).unwrap(), "jwt:u-2");
        assert_eq!(owner_of("authenticated", &roles(), Some(r#"{"role":"x"}"#), Some("u-3")).unwrap(), "jwt:u-3");
    }

    #[test]
    fn a_jwt_role_without_a_subject_is_refused() {
        for (claims, sub) in [
            (None, None),
            (Some(r#"{"role":"authenticated"}"#), None),
            (Some(r#"{"sub":""}"#), None),
            (Some(r#"{"sub":42}"#), None),
            (Some("not json"), Some(" ")),
        ] {
            let e = owner_of("authenticated", &roles(), claims, sub).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Forbidden, "{claims:?}");
            assert!(e.message.contains("no \"sub\""), "{}", e.message);
        }
    }

    #[test]
    fn roles_cannot_take_the_jwt_namespace() {
        let e = owner_of("jwt:bob", &roles(), None, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(e.message.starts_with("role \"jwt:bob\" cannot own documents"), "{}", e.message);
    }
}

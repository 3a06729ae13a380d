//! Space and chart names, chart versions and their ordering.

use std::cmp::Ordering;

use crate::RegistryError;
use crate::error::echo;

/// Longest space or chart name accepted, in bytes. Names become file names in the store
/// (`spaces/{space}.json`, and a staging suffix while it is written), which most file
/// systems cap at 255 bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Longest chart version accepted, in bytes: an OCI tag's limit (a version is a tag with
/// `+` written `_`), and short enough for `{version}.json` and its staging suffix to be a
/// file name.
pub const MAX_VERSION_LEN: usize = 128;

/// `^[a-zA-Z0-9][a-zA-Z0-9_-]*$`, at most [`MAX_NAME_LEN`] bytes: the seed's rule, which
/// also keeps names safe as storage key segments and URL path segments.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() && bytes.len() <= MAX_NAME_LEN => {
            bytes.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        }
        _ => false,
    }
}

/// Checks a space or chart name; `kind` names it in the error ("space", "chart").
pub fn check_name(kind: &str, name: &str) -> Result<(), RegistryError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::invalid(format!(
            "{} is invalid: {:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$ and be at most {MAX_NAME_LEN} characters",
            echo(kind),
            echo(name)
        )))
    }
}

/// Space names that would collide with top-level routes (`/api`, `/v2`, `/health`, ...).
pub const RESERVED_SPACE_NAMES: &[&str] = &["api", "apidocs", "charts", "health", "info", "metrics", "v1", "v2"];

/// Checks a name for a space about to be created.
pub fn check_new_space_name(space: &str) -> Result<(), RegistryError> {
    check_name("space", space)?;
    if RESERVED_SPACE_NAMES.contains(&space) {
        return Err(RegistryError::invalid(format!(
            "space is invalid: {:?} is reserved for the server's own routes ({})",
            echo(space),
            RESERVED_SPACE_NAMES.join(", ")
        )));
    }
    Ok(())
}

/// Parses a chart version: full SemVer 2, pre-release and build metadata allowed, at most
/// [`MAX_VERSION_LEN`] bytes.
pub fn parse_version(version: &str) -> Result<semver::Version, RegistryError> {
    if version.len() > MAX_VERSION_LEN {
        return Err(RegistryError::invalid(format!(
            "version is invalid: {:?} is longer than {MAX_VERSION_LEN} bytes",
            echo(version)
        )));
    }
    semver::Version::parse(version)
        .map_err(|e| RegistryError::invalid(format!("version is invalid: {:?} is not SemVer 2 ({e})", echo(version))))
}

/// SemVer precedence, with build metadata as a final tie-breaker so that the order is
/// total and stable (`1.0.0+a` and `1.0.0+b` are distinct stored versions).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).then_with(|| a.build.cmp(&b.build)),
        _ => a.cmp(b),
    }
}

/// Whether a version is a stable release (no pre-release part).
pub fn is_stable(version: &str) -> bool {
    semver::Version::parse(version).is_ok_and(|v| v.pre.is_empty())
}

/// The version users mean by "latest": the highest stable one, or the highest
/// pre-release when there is no stable version.
pub fn latest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best_stable: Option<&str> = None;
    let mut best_any: Option<&str> = None;
    for v in versions {
        if best_any.is_none_or(|b| compare_versions(v, b).is_gt()) {
            best_any = Some(v);
        }
        if is_stable(v) && best_stable.is_none_or(|b| compare_versions(v, b).is_gt()) {
            best_stable = Some(v);
        }
    }
    best_stable.or(best_any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names() {
        for ok in ["test", "teXa-sd--_t", "test_Space", "0abc"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["_srsd", "_11srsd", "-11srsd", "", "a/b", "a.b", "a b", "ä"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(is_valid_name(&"a".repeat(128)));
        assert!(!is_valid_name(&"a".repeat(129)));
    }

    #[test]
    fn versions_order_by_precedence() {
        let mut v = vec!["1.10.0", "1.2.0", "1.2.0-rc.1", "1.2.0-alpha", "0.9.9", "1.2.0+b2", "1.2.0+b1"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, ["0.9.9", "1.2.0-alpha", "1.2.0-rc.1", "1.2.0", "1.2.0+b1", "1.2.0+b2", "1.10.0"]);
    }

    #[test]
    fn latest_prefers_stable() {
        assert_eq!(latest(["1.0.0", "2.0.0-rc.1", "1.5.0"]), Some("1.5.0"));
        assert_eq!(latest(["2.0.0-rc.1", "2.0.0-beta.1"]), Some("2.0.0-rc.1"));
        assert_eq!(latest([]), None);
    }

    #[test]
    fn rejects_non_semver() {
        for bad in ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "latest", ""] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert!(parse_version("1.0.0-rc.1+build.5").is_ok());
    }

    #[test]
    fn refuses_versions_longer_than_the_limit() {
        let at_limit = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN - 6));
        assert!(parse_version(&at_limit).is_ok());
        let over = format!("{at_limit}b");
        let error = parse_version(&over).unwrap_err().to_string();
        assert!(error.contains(&format!("longer than {MAX_VERSION_LEN} bytes")), "{error}");
        assert!(error.len() < 400, "{error}");
    }
}

//! A space's policy: the rules every write into the space is checked against.
//!
//! The wire form is `{"immutable": bool, "retention": {"keeplast": N, "maxagedays": D,
//! "keepstable": bool}, "quota": {"maxbytes": N, "maxversions": N}, "requireprovenance":
//! bool}`; an absent field is no rule. Retention is stored and returned only: nothing here
//! removes versions.

use serde::{Deserialize, Serialize};

use crate::RegistryError;

/// The policy of one space. The default (every field absent) has no rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpacePolicy {
    /// A stored version can never be replaced, rewritten, overwritten or re-tagged, and only
    /// a global admin may delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Which versions to keep (stored, not applied by the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Limits on what the space holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Uploads must come with a provenance file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requireprovenance: Option<bool>,
}

/// Which versions a retention run would keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the newest N versions of each chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeplast: Option<u64>,
    /// Keep versions younger than D days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxagedays: Option<u64>,
    /// Keep every stable (non-prerelease) version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepstable: Option<bool>,
}

/// Limits on a space's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// The most bytes of archives the space may hold (the sum of its versions' sizes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxbytes: Option<u64>,
    /// The most versions the space may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxversions: Option<u64>,
}

/// What a space holds now, as a quota counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub versions: u64,
}

/// Longest policy document accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

impl SpacePolicy {
    /// Parses and validates a policy document.
    pub fn parse(body: &[u8]) -> Result<Self, RegistryError> {
        if body.len() > MAX_POLICY_BYTES {
            return Err(RegistryError::TooLarge(format!("a policy has at most {MAX_POLICY_BYTES} bytes")));
        }
        let invalid = |e: serde_json::Error| {
            RegistryError::invalid(format!("body should be a space policy: {}", crate::error::bounded(&e, 512)))
        };
        let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
        if !value.is_object() {
            return Err(RegistryError::invalid("body should be a space policy: a JSON object"));
        }
        let policy: Self = serde_json::from_value(value).map_err(invalid)?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the numbers: every count, age and size is at least 1.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let at_least_one = |field: &str, value: Option<u64>| match value {
            Some(0) => Err(RegistryError::invalid(format!("{field} should be at least 1"))),
            _ => Ok(()),
        };
        if let Some(retention) = &self.retention {
            at_least_one("retention.keeplast", retention.keeplast)?;
            at_least_one("retention.maxagedays", retention.maxagedays)?;
        }
        if let Some(quota) = &self.quota {
            at_least_one("quota.maxbytes", quota.maxbytes)?;
            at_least_one("quota.maxversions", quota.maxversions)?;
        }
        Ok(())
    }

    pub fn is_immutable(&self) -> bool {
        self.immutable == Some(true)
    }

    pub fn requires_provenance(&self) -> bool {
        self.requireprovenance == Some(true)
    }

    /// Refuses rewriting a stored version (`what` says how) when the space is immutable.
    pub fn check_rewrite(&self, space: &str, what: &str) -> Result<(), RegistryError> {
        if self.is_immutable() {
            return Err(RegistryError::Refused(format!("space {space} is immutable: {what} is not allowed")));
        }
        Ok(())
    }

    /// Refuses deleting a stored version when the space is immutable and the caller is not
    /// a global admin.
    pub fn check_delete(&self, space: &str, by_global_admin: bool) -> Result<(), RegistryError> {
        if self.is_immutable() && !by_global_admin {
            return Err(RegistryError::Refused(format!(
                "space {space} is immutable: only a global admin may delete its versions"
            )));
        }
        Ok(())
    }

    /// Refuses an upload without a provenance file when the space requires one.
    pub fn check_provenance(&self, space: &str, has_provenance: bool) -> Result<(), RegistryError> {
        if self.requires_provenance() && !has_provenance {
            return Err(RegistryError::Refused(format!(
                "space {space} requires a provenance file (.prov) with every upload"
            )));
        }
        Ok(())
    }

    /// Refuses adding `added` (bytes, versions) to a space holding `current` when that
    /// would pass its quota. `replaced` is what the upload takes away (the archive size of
    /// a version it overwrites).
    pub fn check_quota(&self, space: &str, current: Usage, added: Usage, replaced: Usage) -> Result<(), RegistryError> {
        let Some(quota) = &self.quota else { return Ok(()) };
        let after = |now: u64, add: u64, gone: u64| now.saturating_sub(gone).saturating_add(add);
        if let Some(max) = quota.maxversions {
            let versions = after(current.versions, added.versions, replaced.versions);
            if added.versions > replaced.versions && versions > max {
                return Err(RegistryError::OverQuota(format!(
                    "space {space} is over its quota: it may hold {max} versions (quota.maxversions) and holds {}",
                    current.versions
                )));
            }
        }
        if let Some(max) = quota.maxbytes {
            let bytes = after(current.bytes, added.bytes, replaced.bytes);
            if added.bytes > replaced.bytes && bytes > max {
                return Err(RegistryError::OverQuota(format!(
                    "space {space} is over its quota: it may hold {max} bytes of archives (quota.maxbytes), holds {} and this \
                     upload adds {}",
                    current.bytes,
                    added.bytes.saturating_sub(replaced.bytes)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_rejects_the_rest() {
        let body = br#"{"immutable": true, "retention": {"keeplast": 3, "maxagedays": 30, "keepstable": true},
            "quota": {"maxbytes": 1000, "maxversions": 5}, "requireprovenance": false}"#;
        let policy = SpacePolicy::parse(body).unwrap();
        assert!(policy.is_immutable());
        assert_eq!(policy.quota.as_ref().unwrap().maxversions, Some(5));
        let round = serde_json::to_vec(&policy).unwrap();
        assert_eq!(SpacePolicy::parse(&round).unwrap(), policy);
        assert_eq!(SpacePolicy::parse(b"{}").unwrap(), SpacePolicy::default());
        assert_eq!(serde_json::to_string(&SpacePolicy::default()).unwrap(), "{}");
        for bad in [
            &br#"{"immutible": true}"#[..],
            br#"{"quota": {"maxbytes": 0}}"#,
            br#"{"quota": {"maxversions": -1}}"#,
            br#"{"retention": {"keeplast": 0}}"#,
            br#"{"retention": {"maxagedays": 0}}"#,
            br#"{"retention": {"pattern": "x"}}"#,
            br#"{"immutable": "yes"}"#,
            b"[]",
            b"not json",
        ] {
            assert!(
                matches!(SpacePolicy::parse(bad), Err(RegistryError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(SpacePolicy::parse(&vec![b' '; MAX_POLICY_BYTES + 1]), Err(RegistryError::TooLarge(_))));
    }

    #[test]
    fn quota_counts_what_an_upload_adds() {
        let policy =
            SpacePolicy { quota: Some(Quota { maxbytes: Some(100), maxversions: Some(2) }), ..SpacePolicy::default() };
        let usage = |bytes, versions| Usage { bytes, versions };
        let none = Usage::default();
        assert!(policy.check_quota("s", usage(0, 0), usage(100, 1), none).is_ok());
        assert!(policy.check_quota("s", usage(50, 1), usage(50, 1), none).is_ok());
        let err = policy.check_quota("s", usage(50, 2), usage(10, 1), none).unwrap_err();
        assert!(matches!(&err, RegistryError::OverQuota(m) if m.contains("2 versions")), "{err}");
        let err = policy.check_quota("s", usage(60, 1), usage(41, 1), none).unwrap_err();
        assert!(matches!(&err, RegistryError::OverQuota(m) if m.contains("100 bytes") && m.contains("holds 60")));
        // Overwriting a version with one no larger never passes the quota.
        assert!(policy.check_quota("s", usage(100, 2), usage(90, 1), usage(95, 1)).is_ok());
        assert!(SpacePolicy::default().check_quota("s", usage(u64::MAX, u64::MAX), usage(1, 1), none).is_ok());
    }

    #[test]
    fn immutable_and_provenance_rules() {
        let policy = SpacePolicy { immutable: Some(true), requireprovenance: Some(true), ..SpacePolicy::default() };
        assert!(matches!(policy.check_rewrite("s", "replacing 1.0.0"), Err(RegistryError::Refused(_))));
        assert!(policy.check_delete("s", true).is_ok());
        assert!(matches!(policy.check_delete("s", false), Err(RegistryError::Refused(_))));
        assert!(matches!(policy.check_provenance("s", false), Err(RegistryError::Refused(_))));
        assert!(policy.check_provenance("s", true).is_ok());
        let open = SpacePolicy::default();
        assert!(open.check_rewrite("s", "x").is_ok() && open.check_delete("s", false).is_ok());
        assert!(open.check_provenance("s", false).is_ok());
    }
}

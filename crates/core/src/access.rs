//! Who may do what to which space: roles, space patterns and the policy that grants roles to
//! users, groups and anonymous callers. A pure function of the configuration; the HTTP layer
//! asks it once per request, before any registry call.
//!
//! - Roles are ordered: `read` ⊂ `write` ⊂ `admin`.
//! - A user's role in a space comes from the grants to the user and its groups whose pattern
//!   matches the space: the longest pattern wins (the most specific rule), the highest role
//!   among equally long ones. Anonymous grants apply to everyone, signed in or not, so a
//!   signed-in user never has less than an anonymous caller.
//! - Global admins are `admin` everywhere.
//! - An API token acts for its owner, limited to its own space patterns and role: it never
//!   has more than its owner has now, whatever the owner had when it was created.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role in a space; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("{other:?} is not a role (read, write or admin)")),
        }
    }
}

/// What a request does to a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read indexes, archives, metadata, manifests, blobs.
    Read,
    /// Upload, replace, rewrite.
    Write,
    /// Delete versions, charts, manifests, tags, blobs.
    Delete,
    /// Create and delete the space itself.
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Admin => "admin",
        }
    }
}

/// A glob over space names: `*` matches any run of characters, `?` one character; anything
/// else matches itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpacePattern(String);

/// Longest pattern accepted; space names are short.
const MAX_PATTERN_LEN: usize = 256;

impl SpacePattern {
    pub fn new(pattern: impl Into<String>) -> Result<Self, String> {
        let pattern = pattern.into();
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("space pattern {pattern:?} must be 1 to {MAX_PATTERN_LEN} characters"));
        }
        if let Some(c) = pattern.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '/') {
            return Err(format!("space pattern {pattern:?} holds {c:?}, which no space name has"));
        }
        Ok(Self(pattern))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How specific the pattern is: its characters other than wildcards.
    fn specificity(&self) -> usize {
        self.0.chars().filter(|c| *c != '*').count()
    }

    pub fn matches(&self, space: &str) -> bool {
        glob(self.0.as_bytes(), space.as_bytes())
    }
}

impl TryFrom<String> for SpacePattern {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<SpacePattern> for String {
    fn from(pattern: SpacePattern) -> Self {
        pattern.0
    }
}

impl fmt::Display for SpacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Glob matching without backtracking blow-up: on a mismatch it resumes after the last
/// `*`, so the cost is O(pattern × text) at worst.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                resume = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((star, from)) => {
                    p = star + 1;
                    t = from + 1;
                    resume = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Roles granted by one rule: to users and groups, in the spaces its patterns match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub spaces: Vec<SpacePattern>,
    #[serde(default)]
    pub users: BTreeMap<String, Role>,
    #[serde(default)]
    pub groups: BTreeMap<String, Role>,
}

/// A role every caller has, signed in or not, in the spaces the patterns match.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousRule {
    pub spaces: Vec<SpacePattern>,
    pub role: Role,
}

/// What an API token is limited to, below its owner's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLimits {
    /// The spaces it may touch; empty: every space its owner may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<SpacePattern>,
    /// Its highest role; none: its owner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl TokenLimits {
    /// `role` as far as these limits let it go in `space`.
    fn cap(&self, space: &str, role: Option<Role>) -> Option<Role> {
        if !self.spaces.is_empty() && !self.spaces.iter().any(|p| p.matches(space)) {
            return None;
        }
        match self.role {
            Some(limit) => role.map(|r| r.min(limit)),
            None => role,
        }
    }
}

/// Who is asking, as the policy sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The signed-in user; none for anonymous callers.
    pub user: Option<&'a str>,
    /// Set when the caller came with an API token.
    pub limits: Option<&'a TokenLimits>,
}

impl<'a> Caller<'a> {
    pub const ANONYMOUS: Caller<'static> = Caller { user: None, limits: None };

    pub fn user(name: &'a str) -> Self {
        Self { user: Some(name), limits: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Grant {
    pattern: SpacePattern,
    role: Role,
}

/// The configured access policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    admins: BTreeSet<String>,
    anonymous: Vec<Grant>,
    /// Grants per user, its groups' included.
    users: BTreeMap<String, Vec<Grant>>,
    write_includes_delete: bool,
}

impl Policy {
    /// Builds the policy; `groups` maps a group to its members.
    pub fn new(
        admins: impl IntoIterator<Item = String>,
        anonymous: Vec<AnonymousRule>,
        rules: Vec<Rule>,
        groups: &BTreeMap<String, Vec<String>>,
        write_includes_delete: bool,
    ) -> Result<Self, String> {
        let mut users: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
        for rule in rules {
            if rule.spaces.is_empty() {
                return Err("a rule needs at least one space pattern in `spaces`".into());
            }
            for (user, role) in &rule.users {
                for pattern in &rule.spaces {
                    users.entry(user.clone()).or_default().push(Grant { pattern: pattern.clone(), role: *role });
                }
            }
            for (group, role) in &rule.groups {
                let members =
                    groups.get(group).ok_or_else(|| format!("rule names group {group:?}, not in `groups`"))?;
                for user in members {
                    for pattern in &rule.spaces {
                        users.entry(user.clone()).or_default().push(Grant { pattern: pattern.clone(), role: *role });
                    }
                }
            }
        }
        let anonymous = anonymous
            .into_iter()
            .flat_map(|rule| rule.spaces.into_iter().map(move |pattern| Grant { pattern, role: rule.role }))
            .collect();
        Ok(Self { admins: admins.into_iter().collect(), anonymous, users, write_includes_delete })
    }

    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }

    /// Whether deleting needs only `write` (otherwise `admin`).
    pub fn write_includes_delete(&self) -> bool {
        self.write_includes_delete
    }

    /// The caller's role in `space`, if any.
    pub fn role(&self, caller: Caller<'_>, space: &str) -> Option<Role> {
        let anonymous = best(&self.anonymous, space);
        let own = match caller.user {
            Some(user) if self.is_admin(user) => Some(Role::Admin),
            Some(user) => self.users.get(user).and_then(|grants| best(grants, space)),
            None => None,
        };
        let role = own.max(anonymous);
        match caller.limits {
            Some(limits) => limits.cap(space, role),
            None => role,
        }
    }

    /// The role `action` needs.
    pub fn needs(&self, action: Action) -> Role {
        match action {
            Action::Read => Role::Read,
            Action::Write => Role::Write,
            Action::Delete if self.write_includes_delete => Role::Write,
            Action::Delete | Action::Admin => Role::Admin,
        }
    }

    pub fn allows(&self, caller: Caller<'_>, space: &str, action: Action) -> bool {
        self.role(caller, space).is_some_and(|role| role >= self.needs(action))
    }

    /// Whether the caller is a global admin (a token only if it is unlimited).
    pub fn is_global_admin(&self, caller: Caller<'_>) -> bool {
        caller.user.is_some_and(|u| self.is_admin(u))
            && caller.limits.is_none_or(|l| l.spaces.is_empty() && l.role.is_none_or(|r| r == Role::Admin))
    }
}

/// The role of the longest matching pattern (the highest among equally long ones).
fn best(grants: &[Grant], space: &str) -> Option<Role> {
    let mut best: Option<(usize, Role)> = None;
    for grant in grants.iter().filter(|g| g.pattern.matches(space)) {
        let candidate = (grant.pattern.specificity(), grant.role);
        if best.is_none_or(|b| candidate > b) {
            best = Some(candidate);
        }
    }
    best.map(|(_, role)| role)
}

/// An OCI action in a token scope (`repository:{space}/{name}:pull,push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeAction {
    Pull,
    Push,
    Delete,
}

impl ScopeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
        }
    }

    pub fn action(self) -> Action {
        match self {
            Self::Pull => Action::Read,
            Self::Push => Action::Write,
            Self::Delete => Action::Delete,
        }
    }

    pub fn of(action: Action) -> Self {
        match action {
            Action::Read => Self::Pull,
            Action::Write => Self::Push,
            Action::Delete | Action::Admin => Self::Delete,
        }
    }
}

/// One scope of the OCI token protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses `repository:{space}/{name}:pull,push` or `registry:catalog:*`; `None` for
    /// anything else (clients may ask for scopes this registry has no use for).
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if name.is_empty() || name.len() > 512 || !matches!(kind, "repository" | "registry") {
            return None;
        }
        let actions = actions.split(',').filter(|a| !a.is_empty()).take(8).map(str::to_string).collect();
        Some(Self { kind: kind.to_string(), name: name.to_string(), actions })
    }

    /// What of this scope the policy grants the caller: pull, push and delete as its role
    /// in the repository's space allows (`*` asks for all three); the catalog to everyone,
    /// since it only lists what the caller may read.
    pub fn granted(&self, policy: &Policy, caller: Caller<'_>) -> Option<Self> {
        let actions: Vec<String> = match self.kind.as_str() {
            "registry" if self.name == "catalog" => self.actions.iter().filter(|a| *a == "*").cloned().collect(),
            "repository" => {
                let space = self.name.split_once('/').map(|(space, _)| space)?;
                let asked: BTreeSet<ScopeAction> = self
                    .actions
                    .iter()
                    .flat_map(|a| match a.as_str() {
                        "pull" => vec![ScopeAction::Pull],
                        "push" => vec![ScopeAction::Push],
                        "delete" => vec![ScopeAction::Delete],
                        "*" => vec![ScopeAction::Pull, ScopeAction::Push, ScopeAction::Delete],
                        _ => vec![],
                    })
                    .collect();
                asked
                    .into_iter()
                    .filter(|a| policy.allows(caller, space, a.action()))
                    .map(|a| a.as_str().to_string())
                    .collect()
            }
            _ => vec![],
        };
        (!actions.is_empty()).then(|| Self { kind: self.kind.clone(), name: self.name.clone(), actions })
    }

    /// Whether this scope lets its holder do `action` in repository `repository`.
    pub fn permits(&self, repository: &str, action: ScopeAction) -> bool {
        self.kind == "repository" && self.name == repository && self.actions.iter().any(|a| a == action.as_str())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> SpacePattern {
        SpacePattern::new(p).unwrap()
    }

    fn policy(write_includes_delete: bool) -> Policy {
        let groups = BTreeMap::from([("platform".to_string(), vec!["bob".to_string()])]);
        let rules = vec![
            Rule {
                spaces: vec![pattern("team-*")],
                users: BTreeMap::from([("alice".into(), Role::Write)]),
                groups: BTreeMap::from([("platform".into(), Role::Read)]),
            },
            Rule {
                spaces: vec![pattern("team-secret")],
                users: BTreeMap::from([("alice".into(), Role::Read)]),
                groups: BTreeMap::from([("platform".into(), Role::Admin)]),
            },
        ];
        let anonymous = vec![AnonymousRule { spaces: vec![pattern("public-*")], role: Role::Read }];
        Policy::new(["root".to_string()], anonymous, rules, &groups, write_includes_delete).unwrap()
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(pattern("team-*").matches("team-a"));
        assert!(pattern("team-*").matches("team-"));
        assert!(!pattern("team-*").matches("xteam-a"));
        assert!(pattern("*").matches("anything"));
        assert!(pattern("a*b*c").matches("aXXbYYc"));
        assert!(!pattern("a*b*c").matches("aXXbYY"));
        assert!(pattern("t?am").matches("team"));
        assert!(!pattern("team").matches("teams"));
        // No exponential blow-up on a pathological pattern.
        let long = "a".repeat(200);
        assert!(!pattern(&format!("{}c", "a*".repeat(50))).matches(&format!("{long}b")));
    }

    #[test]
    fn longest_pattern_wins() {
        let policy = policy(true);
        assert_eq!(policy.role(Caller::user("alice"), "team-a"), Some(Role::Write));
        assert_eq!(policy.role(Caller::user("alice"), "team-secret"), Some(Role::Read));
        assert_eq!(policy.role(Caller::user("bob"), "team-a"), Some(Role::Read));
        assert_eq!(policy.role(Caller::user("bob"), "team-secret"), Some(Role::Admin));
        assert_eq!(policy.role(Caller::user("carol"), "team-a"), None);
    }

    #[test]
    fn anonymous_grants_apply_to_everyone() {
        let policy = policy(true);
        assert_eq!(policy.role(Caller::ANONYMOUS, "public-charts"), Some(Role::Read));
        assert_eq!(policy.role(Caller::ANONYMOUS, "team-a"), None);
        assert_eq!(policy.role(Caller::user("carol"), "public-charts"), Some(Role::Read));
        assert_eq!(policy.role(Caller::user("root"), "anything"), Some(Role::Admin));
    }

    #[test]
    fn delete_needs_write_or_admin_as_configured() {
        assert!(policy(true).allows(Caller::user("alice"), "team-a", Action::Delete));
        assert!(!policy(false).allows(Caller::user("alice"), "team-a", Action::Delete));
        assert!(!policy(true).allows(Caller::user("alice"), "team-a", Action::Admin));
    }

    #[test]
    fn tokens_never_exceed_their_limits_or_owner() {
        let policy = policy(true);
        let read_only = TokenLimits { spaces: vec![], role: Some(Role::Read) };
        let caller = Caller { user: Some("alice"), limits: Some(&read_only) };
        assert_eq!(policy.role(caller, "team-a"), Some(Role::Read));
        let admin_of_one = TokenLimits { spaces: vec![pattern("team-b")], role: Some(Role::Admin) };
        let caller = Caller { user: Some("alice"), limits: Some(&admin_of_one) };
        assert_eq!(policy.role(caller, "team-b"), Some(Role::Write));
        assert_eq!(policy.role(caller, "team-a"), None);
        assert!(!policy.is_global_admin(Caller { user: Some("root"), limits: Some(&admin_of_one) }));
        assert!(policy.is_global_admin(Caller::user("root")));
    }

    #[test]
    fn scopes_grant_the_intersection() {
        let policy = policy(true);
        let asked = Scope::parse("repository:team-a/nginx:pull,push,delete").unwrap();
        let granted = asked.granted(&policy, Caller::user("bob")).unwrap();
        assert_eq!(granted.actions, ["pull"]);
        assert!(granted.permits("team-a/nginx", ScopeAction::Pull));
        assert!(!granted.permits("team-a/nginx", ScopeAction::Push));
        assert!(!granted.permits("team-a/other", ScopeAction::Pull));
        assert_eq!(asked.granted(&policy, Caller::ANONYMOUS), None);
        let all = Scope::parse("repository:team-a/nginx:*").unwrap().granted(&policy, Caller::user("alice")).unwrap();
        assert_eq!(all.actions, ["pull", "push", "delete"]);
        assert_eq!(Scope::parse("nonsense"), None);
        assert_eq!(Scope::parse("registry:catalog:*").unwrap().to_string(), "registry:catalog:*");
    }

    #[test]
    fn unknown_groups_are_configuration_errors() {
        let rules = vec![Rule {
            spaces: vec![pattern("*")],
            users: BTreeMap::new(),
            groups: BTreeMap::from([("x".into(), Role::Read)]),
        }];
        assert!(Policy::new([], vec![], rules, &BTreeMap::new(), true).unwrap_err().contains("\"x\""));
    }
}

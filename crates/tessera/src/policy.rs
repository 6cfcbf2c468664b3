//! Role-based permissions: which role may do what.
//!
//! A permission is the specification's `action:resource` pair, for example
//! `read:users`. Each segment is 1 to 64 characters of `a-z`, `0-9`, `_`,
//! `-` and `.`, starting with a letter or digit. A role *grant* may use `*` as
//! a whole segment (`read:*`, `*:*`); a permission being checked may not.
//!
//! A [`Policy`] maps role names to grants, with optional inheritance, and is
//! flattened once when built, so a check is a scan of one short list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SessionError};

const MAX_SEGMENT: usize = 64;
const MAX_ROLE: usize = 32;

fn valid_segment(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SEGMENT
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        })
}

/// A permission to check, such as `read:users`. Never contains `*`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Permission(String);

impl Permission {
    /// Parses `action:resource`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((a, r)) if valid_segment(a) && valid_segment(r) => Ok(Self(s.to_owned())),
            _ => Err(SessionError::validation(
                "permission must look like action:resource (lowercase letters, digits, _ - .)",
            )),
        }
    }

    /// The whole permission string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> (&str, &str) {
        self.0.split_once(':').unwrap_or((&self.0, ""))
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
    }
}

/// A grant in a role: like a [`Permission`], but `*` may stand for a segment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    action: Option<String>,
    resource: Option<String>,
}

impl Grant {
    /// Parses `action:resource`, where either segment may be `*`.
    pub fn parse(s: &str) -> Result<Self> {
        let seg = |x: &str| -> Option<Option<String>> {
            if x == "*" {
                Some(None)
            } else if valid_segment(x) {
                Some(Some(x.to_owned()))
            } else {
                None
            }
        };
        match s.split_once(':') {
            Some((a, r)) => match (seg(a), seg(r)) {
                (Some(action), Some(resource)) => Ok(Self { action, resource }),
                _ => Err(Self::invalid(s)),
            },
            None => Err(Self::invalid(s)),
        }
    }

    fn invalid(s: &str) -> SessionError {
        let shown: String = s.chars().take(64).collect();
        SessionError::validation(format!(
            "grant {shown:?} must look like action:resource, with * allowed as a whole segment"
        ))
    }

    /// Whether this grant allows `permission`.
    pub fn allows(&self, permission: &Permission) -> bool {
        let (a, r) = permission.parts();
        self.action.as_deref().is_none_or(|x| x == a)
            && self.resource.as_deref().is_none_or(|x| x == r)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.action.as_deref().unwrap_or("*"),
            self.resource.as_deref().unwrap_or("*")
        )
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Grant({self})")
    }
}

/// A role's name: 1 to 32 characters of `a-z`, `0-9`, `_` and `-`, starting
/// with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// Parses a role name.
    pub fn parse(s: &str) -> Result<Self> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_ROLE
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(SessionError::validation(
                "role must be 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter",
            ))
        }
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
    }
}

/// The TOML form of a policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    roles: BTreeMap<String, RoleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    inherits: Vec<String>,
}

/// The policy used when none is configured, in its TOML form.
///
/// | role     | grants                                          |
/// |----------|-------------------------------------------------|
/// | `viewer` | `read:*`                                        |
/// | `member` | everything `viewer` has, and `write:*`          |
/// | `admin`  | everything `member` has, `delete:*`, `manage:*` |
/// | `owner`  | `*:*`                                           |
pub const DEFAULT_POLICY_TOML: &str = r#"
[roles.viewer]
permissions = ["read:*"]

[roles.member]
inherits = ["viewer"]
permissions = ["write:*"]

[roles.admin]
inherits = ["member"]
permissions = ["delete:*", "manage:*"]

[roles.owner]
permissions = ["*:*"]
"#;

/// Roles and what they grant, with inheritance already resolved.
#[derive(Clone, Debug)]
pub struct Policy {
    roles: HashMap<RoleName, Role>,
}

/// One role's grants, with their text rendered once: every validation
/// reports them, so they are not formatted per call.
#[derive(Clone, Debug)]
struct Role {
    grants: Vec<Grant>,
    text: Vec<String>,
}

impl Policy {
    /// Parses a policy from TOML: a `[roles.NAME]` table per role with
    /// `permissions = [...]` and optional `inherits = [...]`. Unknown roles in
    /// `inherits`, inheritance cycles and malformed grants are refused.
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            SessionError::validation(format!("the role policy is not valid: {}", e.message()))
        })?;
        let mut direct: BTreeMap<RoleName, (Vec<Grant>, Vec<RoleName>)> = BTreeMap::new();
        for (name, role) in file.roles {
            let name = RoleName::parse(&name)?;
            let grants = role
                .permissions
                .iter()
                .map(|g| Grant::parse(g))
                .collect::<Result<Vec<_>>>()?;
            let parents = role
                .inherits
                .iter()
                .map(|p| RoleName::parse(p))
                .collect::<Result<Vec<_>>>()?;
            direct.insert(name, (grants, parents));
        }
        let mut roles = HashMap::new();
        for name in direct.keys() {
            let mut grants = BTreeSet::new();
            let mut path = Vec::new();
            collect(&direct, name, &mut grants, &mut path)?;
            let grants: Vec<Grant> = grants.into_iter().collect();
            let text = grants.iter().map(Grant::to_string).collect();
            roles.insert(name.clone(), Role { grants, text });
        }
        Ok(Self { roles })
    }

    /// Whether the policy defines `role`.
    pub fn has_role(&self, role: &RoleName) -> bool {
        self.roles.contains_key(role)
    }

    /// Whether `role` grants `permission`. An unknown role grants nothing.
    pub fn allows(&self, role: &RoleName, permission: &Permission) -> bool {
        self.roles
            .get(role)
            .is_some_and(|r| r.grants.iter().any(|g| g.allows(permission)))
    }

    /// The grants of `role`, inheritance included, as strings.
    pub fn grants(&self, role: &RoleName) -> Vec<String> {
        self.roles
            .get(role)
            .map(|r| r.text.clone())
            .unwrap_or_default()
    }

    /// The names of all roles.
    pub fn role_names(&self) -> impl Iterator<Item = &RoleName> {
        self.roles.keys()
    }
}

impl Default for Policy {
    fn default() -> Self {
        // The default policy is a constant checked by a unit test.
        Self::from_toml(DEFAULT_POLICY_TOML).unwrap_or_else(|_| Self {
            roles: HashMap::new(),
        })
    }
}

type Direct = BTreeMap<RoleName, (Vec<Grant>, Vec<RoleName>)>;

fn collect(
    direct: &Direct,
    name: &RoleName,
    grants: &mut BTreeSet<Grant>,
    path: &mut Vec<RoleName>,
) -> Result<()> {
    if path.contains(name) {
        return Err(SessionError::validation(format!(
            "the role policy has an inheritance cycle through {name}"
        )));
    }
    let Some((own, parents)) = direct.get(name) else {
        return Err(SessionError::validation(format!(
            "the role policy inherits from an undefined role {name}"
        )));
    };
    grants.extend(own.iter().cloned());
    path.push(name.clone());
    for parent in parents {
        collect(direct, parent, grants, path)?;
    }
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(s: &str) -> RoleName {
        RoleName::parse(s).expect("role")
    }
    fn perm(s: &str) -> Permission {
        Permission::parse(s).expect("permission")
    }

    #[test]
    fn the_default_policy_parses_and_inherits() {
        let policy = Policy::from_toml(DEFAULT_POLICY_TOML).expect("default policy");
        assert!(policy.allows(&role("viewer"), &perm("read:users")));
        assert!(!policy.allows(&role("viewer"), &perm("write:users")));
        assert!(policy.allows(&role("member"), &perm("read:users")));
        assert!(policy.allows(&role("member"), &perm("write:users")));
        assert!(!policy.allows(&role("member"), &perm("delete:users")));
        assert!(policy.allows(&role("admin"), &perm("delete:users")));
        assert!(policy.allows(&role("owner"), &perm("anything:else")));
        assert!(!policy.allows(&role("stranger"), &perm("read:users")));
        assert_eq!(Policy::default().role_names().count(), 4);
    }

    #[test]
    fn permissions_follow_a_strict_grammar() {
        for good in [
            "read:users",
            "write:org.settings",
            "a:b",
            "read:user-profiles_2",
        ] {
            assert!(Permission::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "read",
            "read:",
            ":users",
            "read:*",
            "*:*",
            "READ:users",
            "read:users:extra",
            "read users",
            "read:üsers",
            "-read:users",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
        assert!(Permission::parse(&format!("read:{}", "a".repeat(65))).is_err());
    }

    #[test]
    fn wildcards_are_whole_segments_in_grants_only() {
        assert!(Grant::parse("read:*").is_ok());
        assert!(Grant::parse("*:*").is_ok());
        assert!(Grant::parse("re*:users").is_err());
        assert!(Grant::parse("*").is_err());
        let g = Grant::parse("*:users").expect("grant");
        assert!(g.allows(&perm("delete:users")));
        assert!(!g.allows(&perm("delete:orgs")));
    }

    #[test]
    fn cycles_and_unknown_parents_are_refused() {
        let cyclic = "[roles.a]\ninherits=[\"b\"]\n[roles.b]\ninherits=[\"a\"]\n";
        assert!(Policy::from_toml(cyclic).is_err());
        let dangling = "[roles.a]\ninherits=[\"ghost\"]\n";
        assert!(Policy::from_toml(dangling).is_err());
        assert!(Policy::from_toml("[roles.a]\npermissions=[\"bad\"]\n").is_err());
        assert!(Policy::from_toml("[roles.a]\nunknown=1\n").is_err());
    }
}

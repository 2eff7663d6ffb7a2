//! What a ClusterRole grants, as a flat set of (API group, resource, verb).
//!
//! The daemon's RBAC test compares this set with the requests the daemon makes
//! against a fake API server: each request must be granted, and each grant used.

use k8s_openapi::api::rbac::v1::ClusterRole;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use crate::{Bundle, ManifestError};

/// One permission: `verb` on `resource` in `api_group` (`""` is the core group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// The API group, `""` for core.
    pub api_group: String,
    /// The plural resource name, e.g. `endpointslices`.
    pub resource: String,
    /// The verb, e.g. `watch`.
    pub verb: String,
}

impl Permission {
    /// A permission from its three parts.
    pub fn new(api_group: &str, resource: &str, verb: &str) -> Self {
        Self {
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
        }
    }
}

impl From<Permission> for (String, String, String) {
    /// `(api_group, resource, verb)`, as a fake API server records a request.
    fn from(p: Permission) -> Self {
        (p.api_group, p.resource, p.verb)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

/// A rule this module will not flatten, because its meaning is not a finite set of
/// plain permissions (or it narrows them in a way a set cannot express).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A `*` in groups, resources or verbs.
    #[error("rule {rule}: wildcard `*` grants more than can be listed")]
    Wildcard {
        /// The rule's index in the ClusterRole.
        rule: usize,
    },
    /// `resourceNames`, `nonResourceURLs` or an aggregation rule.
    #[error("rule {rule}: {what} is not supported by this check")]
    Unsupported {
        /// The rule's index (0 for the aggregation rule).
        rule: usize,
        /// What the rule uses.
        what: &'static str,
    },
}

/// Every permission `role` grants.
///
/// # Errors
/// A rule with a wildcard, `resourceNames` or `nonResourceURLs`, or an aggregated role.
pub fn granted(role: &ClusterRole) -> Result<BTreeSet<Permission>, RuleError> {
    if role.aggregation_rule.is_some() {
        return Err(RuleError::Unsupported {
            rule: 0,
            what: "aggregationRule",
        });
    }
    let mut permissions = BTreeSet::new();
    for (index, rule) in role.rules.iter().flatten().enumerate() {
        let unsupported = |what| RuleError::Unsupported { rule: index, what };
        if rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(unsupported("resourceNames"));
        }
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            return Err(unsupported("nonResourceURLs"));
        }
        let (groups, resources) = (
            rule.api_groups.as_deref().unwrap_or_default(),
            rule.resources.as_deref().unwrap_or_default(),
        );
        let all = groups.iter().chain(resources).chain(&rule.verbs);
        if all.into_iter().any(|word| word == "*") {
            return Err(RuleError::Wildcard { rule: index });
        }
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    permissions.insert(Permission::new(group, resource, verb));
                }
            }
        }
    }
    Ok(permissions)
}

/// Why the repository's ClusterRole could not be flattened.
#[derive(Debug, thiserror::Error)]
pub enum ShippedError {
    /// The manifests did not load.
    #[error(transparent)]
    Load(#[from] ManifestError),
    /// A rule of the ClusterRole (see [`granted`]).
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// Every permission the ClusterRole in this repository's `manifests/base` grants: what
/// a test's fake API server allows the daemon or `ipvsctl-rs`.
///
/// # Errors
/// [`ShippedError`] when the manifests do not load or a rule cannot be flattened.
pub fn shipped() -> Result<BTreeSet<Permission>, ShippedError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/base");
    Ok(granted(&Bundle::load(&dir)?.cluster_role)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::PolicyRule;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let owned = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
        PolicyRule {
            api_groups: Some(owned(groups)),
            resources: Some(owned(resources)),
            verbs: owned(verbs),
            ..PolicyRule::default()
        }
    }

    fn role(rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            rules: Some(rules),
            ..ClusterRole::default()
        }
    }

    #[test]
    fn rules_expand_to_the_cross_product_of_their_lists() {
        let granted = granted(&role(vec![
            rule(&["", "events.k8s.io"], &["events"], &["create"]),
            rule(&[""], &["services", "nodes"], &["list", "watch"]),
        ]))
        .expect("plain rules");
        let expected: BTreeSet<_> = [
            ("", "events", "create"),
            ("events.k8s.io", "events", "create"),
            ("", "services", "list"),
            ("", "services", "watch"),
            ("", "nodes", "list"),
            ("", "nodes", "watch"),
        ]
        .into_iter()
        .map(|(g, r, v)| Permission::new(g, r, v))
        .collect();
        assert_eq!(granted, expected);
    }

    #[test]
    fn wildcards_and_narrowing_fields_are_refused() {
        assert_eq!(
            granted(&role(vec![
                rule(&[""], &["pods"], &["get"]),
                rule(&["*"], &["x"], &["get"])
            ])),
            Err(RuleError::Wildcard { rule: 1 })
        );
        let mut named = rule(&[""], &["nodes"], &["get"]);
        named.resource_names = Some(vec!["node-1".into()]);
        assert_eq!(
            granted(&role(vec![named])),
            Err(RuleError::Unsupported {
                rule: 0,
                what: "resourceNames"
            })
        );
    }

    #[test]
    fn permissions_print_like_kubectl_auth_can_i() {
        assert_eq!(
            Permission::new("", "services", "watch").to_string(),
            "watch core/services"
        );
    }
}

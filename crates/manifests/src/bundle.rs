//! The complete deployment: one object of each kind, loaded through kustomizations.

use crate::error::ManifestError;
use crate::manifest::{Manifest, parse_documents};
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;
use std::path::Path;

/// Everything `kubectl apply -k manifests/` creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The pods' identity.
    pub service_account: ServiceAccount,
    /// What the daemon may do.
    pub cluster_role: ClusterRole,
    /// Grants the ClusterRole to the ServiceAccount.
    pub cluster_role_binding: ClusterRoleBinding,
    /// The `KubeProxyConfiguration`.
    pub config_map: ConfigMap,
    /// The daemon itself.
    pub daemon_set: DaemonSet,
}

impl Bundle {
    /// Loads the kustomization in `dir`, following its `resources` (files, or
    /// directories with their own kustomization). Kustomizations that transform their
    /// resources (patches and the like) are refused: render those with
    /// `kubectl kustomize` and use [`Bundle::from_yaml`].
    ///
    /// # Errors
    /// A file that cannot be read, a kustomization this loader cannot follow, any
    /// document that is not strictly valid, or a kind not present exactly once.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let mut manifests = Vec::new();
        collect(dir, &mut manifests)?;
        Self::from_manifests(manifests)
    }

    /// Builds the bundle from a rendered multi-document stream.
    ///
    /// # Errors
    /// As [`parse_documents`], or a kind not present exactly once.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ManifestError> {
        Self::from_manifests(parse_documents(text, origin)?)
    }

    fn from_manifests(manifests: Vec<Manifest>) -> Result<Self, ManifestError> {
        let mut found = Found::default();
        for manifest in manifests {
            match manifest {
                Manifest::ServiceAccount(x) => found.service_accounts.push(x),
                Manifest::ClusterRole(x) => found.cluster_roles.push(x),
                Manifest::ClusterRoleBinding(x) => found.cluster_role_bindings.push(x),
                Manifest::ConfigMap(x) => found.config_maps.push(x),
                Manifest::DaemonSet(x) => found.daemon_sets.push(*x),
            }
        }
        Ok(Self {
            service_account: only(found.service_accounts)?,
            cluster_role: only(found.cluster_roles)?,
            cluster_role_binding: only(found.cluster_role_bindings)?,
            config_map: only(found.config_maps)?,
            daemon_set: only(found.daemon_sets)?,
        })
    }
}

/// The documents of a stream, sorted by kind.
#[derive(Default)]
struct Found {
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    daemon_sets: Vec<DaemonSet>,
}

fn only<T: Resource>(mut objects: Vec<T>) -> Result<T, ManifestError> {
    match (objects.pop(), objects.is_empty()) {
        (Some(one), true) => Ok(one),
        (last, _) => Err(ManifestError::Cardinality {
            kind: T::KIND,
            count: objects.len() + usize::from(last.is_some()),
        }),
    }
}

/// The only kustomization fields [`collect`] understands.
const PLAIN_FIELDS: [&str; 3] = ["apiVersion", "kind", "resources"];

fn collect(dir: &Path, into: &mut Vec<Manifest>) -> Result<(), ManifestError> {
    let path = dir.join("kustomization.yaml");
    let refuse = |reason: String| ManifestError::Kustomization {
        path: path.clone(),
        reason,
    };
    let kustomization: Value =
        serde_norway::from_str(&read(&path)?).map_err(|e| refuse(format!("invalid YAML: {e}")))?;
    let fields = kustomization
        .as_object()
        .ok_or_else(|| refuse("not a mapping".into()))?;
    if let Some(other) = fields.keys().find(|k| !PLAIN_FIELDS.contains(&k.as_str())) {
        return Err(refuse(format!(
            "`{other}` needs kustomize itself: render with `kubectl kustomize`"
        )));
    }
    let resources = fields
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("no `resources` list".into()))?;
    for resource in resources {
        let name = resource
            .as_str()
            .ok_or_else(|| refuse(format!("resource {resource} is not a path")))?;
        let target = dir.join(name);
        if target.is_dir() {
            collect(&target, into)?;
        } else {
            into.extend(parse_documents(
                &read(&target)?,
                &target.display().to_string(),
            )?);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_or_missing_kind_is_an_error() {
        let account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n";
        let error = Bundle::from_yaml(&format!("{account}---\n{account}"), "two").map(|_| ());
        assert!(matches!(
            error,
            Err(ManifestError::Cardinality {
                kind: "ServiceAccount",
                count: 2
            })
        ));
        let error = Bundle::from_yaml(account, "one").map(|_| ());
        assert!(matches!(
            error,
            Err(ManifestError::Cardinality {
                kind: "ClusterRole",
                count: 0
            })
        ));
    }

    #[test]
    fn kustomizations_that_transform_are_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources: [a.yaml]\npatches: [{path: p.yaml}]\n",
        )
        .expect("write");
        match Bundle::load(dir.path()) {
            Err(ManifestError::Kustomization { reason, .. }) => {
                assert!(reason.starts_with("`patches`"), "{reason}");
            }
            other => panic!("expected a kustomization error, got {other:?}"),
        }
    }
}

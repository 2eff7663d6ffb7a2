//! One YAML document as one strictly checked, typed Kubernetes object.

use crate::error::ManifestError;
use crate::roundtrip::round_trip_differences;
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};
use serde_json::Value;

/// A document the deployment manifests may contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// `v1/ServiceAccount`
    ServiceAccount(ServiceAccount),
    /// `rbac.authorization.k8s.io/v1/ClusterRole`
    ClusterRole(ClusterRole),
    /// `rbac.authorization.k8s.io/v1/ClusterRoleBinding`
    ClusterRoleBinding(ClusterRoleBinding),
    /// `v1/ConfigMap`
    ConfigMap(ConfigMap),
    /// `apps/v1/DaemonSet` (boxed: it is far larger than the other kinds)
    DaemonSet(Box<DaemonSet>),
}

/// Where a document sits, for error messages.
struct Position<'a> {
    origin: &'a str,
    index: usize,
}

/// Parses a multi-document YAML stream; empty documents are skipped.
///
/// # Errors
/// The first document that is not valid YAML, is of an unexpected kind, does not
/// deserialize into its type, or has a field the type does not know; `origin` (a
/// file name) and the document's index name it.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| ManifestError::Yaml {
            origin: origin.to_owned(),
            index,
            source,
        })?;
        if !value.is_null() {
            manifests.push(Manifest::from_value(&value, &Position { origin, index })?);
        }
    }
    Ok(manifests)
}

impl Manifest {
    fn from_value(value: &Value, at: &Position<'_>) -> Result<Self, ManifestError> {
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if is::<ServiceAccount>(api_version, kind) {
            strict(value, at).map(Self::ServiceAccount)
        } else if is::<ClusterRole>(api_version, kind) {
            strict(value, at).map(Self::ClusterRole)
        } else if is::<ClusterRoleBinding>(api_version, kind) {
            strict(value, at).map(Self::ClusterRoleBinding)
        } else if is::<ConfigMap>(api_version, kind) {
            strict(value, at).map(Self::ConfigMap)
        } else if is::<DaemonSet>(api_version, kind) {
            strict(value, at).map(|d| Self::DaemonSet(Box::new(d)))
        } else {
            Err(ManifestError::UnexpectedKind {
                origin: at.origin.to_owned(),
                index: at.index,
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
        }
    }

    /// The document's kind, e.g. `DaemonSet`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ServiceAccount(_) => ServiceAccount::KIND,
            Self::ClusterRole(_) => ClusterRole::KIND,
            Self::ClusterRoleBinding(_) => ClusterRoleBinding::KIND,
            Self::ConfigMap(_) => ConfigMap::KIND,
            Self::DaemonSet(_) => DaemonSet::KIND,
        }
    }
}

fn is<T: Resource>(api_version: &str, kind: &str) -> bool {
    api_version == T::API_VERSION && kind == T::KIND
}

/// Deserializes `value` as `T` and insists that serializing it back gives `value`.
fn strict<T>(value: &Value, at: &Position<'_>) -> Result<T, ManifestError>
where
    T: Resource + DeserializeOwned + Serialize,
{
    let typed = |source| ManifestError::Typed {
        origin: at.origin.to_owned(),
        index: at.index,
        kind: T::KIND,
        source,
    };
    let object: T = serde_json::from_value(value.clone()).map_err(typed)?;
    let back = serde_json::to_value(&object).map_err(typed)?;
    let differences = round_trip_differences(value, &back);
    if differences.is_empty() {
        Ok(object)
    } else {
        Err(ManifestError::NotStrict {
            origin: at.origin.to_owned(),
            index: at.index,
            kind: T::KIND,
            differences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roundtrip::Difference;

    const ACCOUNT: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n";

    #[test]
    fn documents_of_known_kinds_parse_and_empty_ones_are_skipped() {
        let text = format!("---\n{ACCOUNT}---\n---\n{ACCOUNT}");
        let parsed = parse_documents(&text, "t.yaml").expect("valid");
        assert_eq!(parsed.len(), 2);
        assert!(parsed.iter().all(|m| m.kind() == "ServiceAccount"));
    }

    #[test]
    fn a_misspelt_field_is_an_error_naming_its_path() {
        let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  \
                    selector: {}\n  template:\n    spec:\n      hostNetwrok: true\n      \
                    containers: [{name: c}]\n";
        match parse_documents(text, "ds.yaml") {
            Err(ManifestError::NotStrict { differences, .. }) => assert_eq!(
                differences,
                vec![Difference::Dropped(
                    "/spec/template/spec/hostNetwrok".into()
                )]
            ),
            other => panic!("expected NotStrict, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: [a]\n";
        assert!(matches!(
            parse_documents(text, "sa.yaml"),
            Err(ManifestError::Typed {
                kind: "ServiceAccount",
                ..
            })
        ));
    }

    #[test]
    fn an_unexpected_kind_or_api_version_is_an_error() {
        for text in [
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
            "apiVersion: apps/v1beta2\nkind: DaemonSet\nmetadata: {name: d}\n",
            "metadata: {name: nothing}\n",
        ] {
            assert!(
                matches!(
                    parse_documents(text, "x.yaml"),
                    Err(ManifestError::UnexpectedKind { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_yaml_names_the_document() {
        let text = format!("{ACCOUNT}---\nkind: [\n");
        match parse_documents(&text, "bad.yaml") {
            Err(error @ ManifestError::Yaml { index: 1, .. }) => {
                assert!(
                    error.to_string().starts_with("bad.yaml: document 1"),
                    "{error}"
                );
            }
            other => panic!("expected a YAML error, got {other:?}"),
        }
    }
}

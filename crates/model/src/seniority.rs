//! How old an object is: what decides between two Services that claim one address (the
//! older wins, as the API server would have refused the younger had it known).

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// An object's `creationTimestamp` and `uid`. Ordered oldest first: by creation time, then
/// by uid; an object without a time (or a uid) comes after those with one, as a directory
/// of manifests may give neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Seniority {
    /// `metadata.creationTimestamp`, in seconds since the epoch (the API's resolution).
    pub created: Option<i64>,
    /// `metadata.uid`, shared by every copy (each address a Service claims holds one).
    pub uid: Option<Arc<str>>,
}

impl Seniority {
    /// The seniority `meta` records.
    pub fn of(meta: &ObjectMeta) -> Self {
        Seniority {
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            uid: meta
                .uid
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(Into::into),
        }
    }

    fn key(&self) -> (bool, Option<i64>, bool, Option<&str>) {
        (
            self.created.is_none(),
            self.created,
            self.uid.is_none(),
            self.uid.as_deref(),
        )
    }
}

impl Ord for Seniority {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Seniority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(created: Option<i64>, uid: Option<&str>) -> Seniority {
        Seniority {
            created,
            uid: uid.map(Into::into),
        }
    }

    #[test]
    fn older_first_then_uid_then_the_unknown() {
        let mut all = vec![
            at(None, None),
            at(None, Some("a")),
            at(Some(20), Some("a")),
            at(Some(10), Some("b")),
            at(Some(10), Some("a")),
            at(Some(10), None),
        ];
        all.sort();
        assert_eq!(
            all,
            vec![
                at(Some(10), Some("a")),
                at(Some(10), Some("b")),
                at(Some(10), None),
                at(Some(20), Some("a")),
                at(None, Some("a")),
                at(None, None),
            ]
        );
    }

    #[test]
    fn read_from_the_metadata() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "creationTimestamp": "2020-01-01T00:00:10Z", "uid": "u-1"
        }))
        .expect("metadata");
        assert_eq!(Seniority::of(&meta), at(Some(1_577_836_810), Some("u-1")));
        assert_eq!(Seniority::of(&ObjectMeta::default()), at(None, None));
    }
}

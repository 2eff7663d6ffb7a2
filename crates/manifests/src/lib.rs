//! A strictly typed view of the deployment manifests in the repository's `manifests/`.
//!
//! Every YAML document is parsed into its `k8s-openapi` type and serialized back; any
//! field that does not survive the round trip (a typo, a field of another kind, a
//! field newer than the supported API) is an error naming its path. Tests use this to
//! check the shipped manifests, and [`rbac`] turns the ClusterRole into the set of
//! permissions it grants, for comparison with what the daemon requests.

mod bundle;
mod error;
mod manifest;
pub mod rbac;
mod roundtrip;

pub use bundle::Bundle;
pub use error::ManifestError;
pub use manifest::{Manifest, parse_documents};
pub use roundtrip::{Difference, round_trip_differences};

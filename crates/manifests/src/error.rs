//! Errors naming the file, the document and the field at fault.

use crate::roundtrip::Difference;
use std::path::PathBuf;

/// Why the manifests could not be read as strictly typed Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{origin}: document {index}: invalid YAML: {source}")]
    Yaml {
        /// Where the text came from (a file name, or a description).
        origin: String,
        /// The document's position in the stream, from 0.
        index: usize,
        /// The parser's error, with line and column.
        source: serde_norway::Error,
    },
    /// A document's `apiVersion`/`kind` is not one the manifests may contain.
    #[error("{origin}: document {index}: unexpected kind {api_version}/{kind}")]
    UnexpectedKind {
        /// Where the text came from.
        origin: String,
        /// The document's position in the stream, from 0.
        index: usize,
        /// The document's `apiVersion` (empty if absent).
        api_version: String,
        /// The document's `kind` (empty if absent).
        kind: String,
    },
    /// A document does not deserialize into its `k8s-openapi` type.
    #[error("{origin}: document {index} ({kind}): {source}")]
    Typed {
        /// Where the text came from.
        origin: String,
        /// The document's position in the stream, from 0.
        index: usize,
        /// The document's kind.
        kind: &'static str,
        /// The deserializer's error (missing field, wrong type...).
        source: serde_json::Error,
    },
    /// A document has fields its type does not know, or that change in a round trip.
    #[error("{origin}: document {index} ({kind}): {}", list(.differences))]
    NotStrict {
        /// Where the text came from.
        origin: String,
        /// The document's position in the stream, from 0.
        index: usize,
        /// The document's kind.
        kind: &'static str,
        /// Every field that did not survive the round trip.
        differences: Vec<Difference>,
    },
    /// A kind the bundle needs exactly once is missing or repeated.
    #[error("expected exactly one {kind}, found {count}")]
    Cardinality {
        /// The kind.
        kind: &'static str,
        /// How many documents of that kind there are.
        count: usize,
    },
    /// A `kustomization.yaml` cannot be followed.
    #[error("{path}: {reason}")]
    Kustomization {
        /// The kustomization file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn list(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

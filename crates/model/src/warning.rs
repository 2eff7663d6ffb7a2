//! What the model says about bad input: an object skipped, or a value replaced by a default.

use std::fmt;

use crate::{Kind, ObjectId};

/// Why an object was rejected: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// Path of the offending field, as in the API (`spec.ports[1].port`).
    pub field: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl Invalid {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A problem with one object, reported to the operator (log line, Kubernetes Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The kind of the object.
    pub kind: Kind,
    /// The object's namespace and name.
    pub object: ObjectId,
    /// The field and the problem.
    pub problem: Invalid,
    /// Whether the whole object was skipped (true) or only the field replaced by a default.
    pub skipped: bool,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let consequence = if self.skipped {
            "object skipped"
        } else {
            "default used"
        };
        write!(
            f,
            "{} {}: {} ({consequence})",
            self.kind, self.object, self.problem
        )
    }
}

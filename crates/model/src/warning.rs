//! What the model says about bad input: an object skipped, its last valid version kept, or a
//! value replaced by a default.

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
    /// What the model did about it.
    pub consequence: Consequence,
}

/// What the model does with an object that has a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consequence {
    /// The object is not used at all: no earlier valid version of it was held.
    Skipped,
    /// The update is not used: the last valid version of the object stays in use, so what
    /// was programmed for it is kept until a valid version (or a deletion) arrives.
    LastValidKept,
    /// Only the field is replaced by its default; the object is used.
    DefaultUsed,
    /// The object is used, but an address it claims goes to another object that claims it
    /// too.
    AddressLost,
}

impl Consequence {
    /// Whether the object (this version of it) is left out of the model.
    pub fn rejects(self) -> bool {
        matches!(self, Consequence::Skipped | Consequence::LastValidKept)
    }
}

impl fmt::Display for Consequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consequence::Skipped => "object skipped",
            Consequence::LastValidKept => "update ignored, last valid version kept",
            Consequence::DefaultUsed => "default used",
            Consequence::AddressLost => "address left to the other Service",
        })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.kind, self.object, self.problem, self.consequence
        )
    }
}

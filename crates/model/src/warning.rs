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

/// The most of a field path or a reason a warning keeps, in bytes: both may quote a raw
/// value of any size (an annotation's key or value, a serde message quoting a string), and
/// every warning becomes a log line and an Event.
pub const MAX_QUOTED: usize = 256;

impl Invalid {
    /// An error about `field`; the field path and the reason are cut to [`MAX_QUOTED`]
    /// bytes each ([`bounded`]).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: bounded(field.into(), MAX_QUOTED),
            reason: bounded(reason.into(), MAX_QUOTED),
        }
    }
}

/// `text` if it has at most `max` bytes; else its longest prefix that, with a note of the
/// whole length (`… (1048576 bytes)`), fits in `max` bytes.
pub fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let note = format!("… ({} bytes)", text.len());
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text;
    out.truncate(end);
    out.push_str(&note);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_raw_value_is_quoted_by_a_bounded_prefix() {
        let raw = "é".repeat(500_000);
        let invalid = Invalid::new(
            format!("metadata.annotations[{raw}]"),
            format!("unknown IPVS scheduler {raw:?}"),
        );
        assert!(invalid.field.len() <= MAX_QUOTED, "{}", invalid.field.len());
        assert!(
            invalid.reason.len() <= MAX_QUOTED,
            "{}",
            invalid.reason.len()
        );
        assert!(invalid.reason.starts_with("unknown IPVS scheduler \"éé"));
        assert!(
            invalid.reason.ends_with("… (1000025 bytes)"),
            "{}",
            invalid.reason
        );
        assert_eq!(bounded("short".into(), 8), "short");
    }
}

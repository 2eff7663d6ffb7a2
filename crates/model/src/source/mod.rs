//! Where objects come from. Every source turns what it reads into [`SourceEvent`]s, which
//! [`crate::Model::apply`] consumes: a directory and an API server feed the model through
//! the same code path.

pub mod dir;
pub mod kube;

use crate::{Kind, Object};

/// One thing a source learned.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// An object was created or modified.
    Applied(Object),
    /// An object was deleted.
    Deleted(Object),
    /// The complete current set of one kind: a first list, a relist (after `410 Gone`), or a
    /// directory re-read. Objects of that kind not in the list are gone.
    Listed(Kind, Vec<Object>),
}

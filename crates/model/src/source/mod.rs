//! Where objects come from. Every source turns what it reads into [`SourceEvent`]s, which
//! [`crate::Model::apply`] consumes: a directory and an API server feed the model through
//! the same code path.

pub mod dir;
mod file;
mod json;
pub mod kube;
mod notify;
mod split;

use crate::{Kind, Object, Warning};

/// One thing a source learned.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// An object was created or modified.
    Applied(Object),
    /// An object was deleted.
    Deleted(Object),
    /// A complete listing of one kind begins (a first list, a relist after `410 Gone`, a
    /// directory re-read): its objects follow as [`SourceEvent::Applied`], one at a time, so
    /// that no source holds a whole listing of raw objects.
    Relisting(Kind),
    /// The listing of one kind that [`SourceEvent::Relisting`] began is complete: objects of
    /// that kind not applied since are gone.
    Relisted(Kind),
    /// A complete listing in one event, for callers that have it at hand (tests, benchmarks):
    /// the same as `Relisting`, every object `Applied`, then `Relisted`.
    Listed(Kind, Vec<Object>),
    /// An object of a known kind that could not be decoded (the warning names it and the
    /// field). In a listing its id counts as seen, so a valid version already held stays.
    Undecodable(Warning),
}

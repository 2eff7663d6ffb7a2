//! Kubernetes Services, EndpointSlices and this node, as the proxy sees them.
//!
//! The first two steps of the daemon's pipeline (sources → model → desired state → …):
//! - [`source`]: where objects come from — a directory of YAML/JSON files
//!   ([`source::dir`]) or a Kubernetes API server ([`source::kube`]). Both produce
//!   the same [`SourceEvent`]s.
//! - [`Model`]: the in-memory store those events are applied to. Every object is
//!   validated once, at this edge, into the plain types of [`service`],
//!   [`endpoints`] and [`node`]; an invalid object is skipped with a [`Warning`]
//!   naming the object and the field, and never reaches the later steps.

pub mod admission;
pub mod drain;
pub mod endpoints;
pub mod idset;
pub mod labels;
pub mod net;
pub mod node;
pub mod object;
pub mod pending;
pub mod scheduler;
pub mod scheduling;
pub mod seniority;
pub mod service;
pub mod source;
pub mod store;
pub mod warning;

pub use admission::{Admission, NotProxied, admit};
pub use drain::DRAIN_TIMEOUT_ANNOTATION;
pub use endpoints::{Endpoint, EndpointPort, EndpointSlice, Hints, PodRef};
pub use idset::IdSet;
pub use labels::{ProxyFilter, Rejection};
pub use net::{IpFamily, ObjectId, Protocol};
pub use node::Node;
pub use object::{Kind, Object};
pub use pending::{LAST_CHANGE_TRIGGER_TIME, Pending};
pub use scheduler::{SchedFlags, Scheduler};
pub use scheduling::{SCHED_FLAGS_ANNOTATION, SCHEDULER_ANNOTATION, Scheduling};
pub use seniority::Seniority;
pub use service::{Service, ServicePort, ServiceType, SessionAffinity, Unproxied};
pub use source::SourceEvent;
pub use store::{Changes, Model};
pub use warning::{Consequence, Invalid, Warning};

/// `v` without room to grow: the model keeps every object of the cluster, and a vector
/// collected from an iterator of unknown length holds room for four or more.
pub(crate) fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

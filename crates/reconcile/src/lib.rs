//! The diff step of the pipeline (sources → model → desired state → **diff** →
//! kernel): pure functions from the desired state and what the kernel really
//! has to the minimal list of operations, in a safe order. No I/O here: the
//! daemon observes the kernel, calls these, and applies the result.
//!
//! - [`wanted`]: the desired state's virtual servers as `ipvs` crate values.
//! - [`ownership`]: which of the kernel's virtual servers are ours to change.
//! - [`ipvs`]: virtual and real servers, with graceful termination.
//! - [`drain`]: the clock of real servers being drained.
//! - [`addresses`]: the addresses bound to `kube-ipvs0`.
//! - [`drift`]: what changed in the kernel behind our back since the last sync.
//! - [`inspect`]: one Service's desired state against the kernel, for `explain --live`.
//! - [`ipsets`]: kube-proxy's ipsets as `ipset` crate specs and members.
//! - [`iptables`]: kube-proxy's IPVS-mode chains as the iptables writer's tables.
//! - [`conntrack`]: which UDP conntrack entries are stale.
//! - [`scope`]: the virtual servers a sync reads and plans for.
//! - [`survey`]: a periodic sync's scope, from a cheap look at the whole table.

pub mod addresses;
pub mod conntrack;
pub mod drain;
pub mod drift;
#[cfg(test)]
mod fixtures;
pub mod inspect;
pub mod ipsets;
pub mod iptables;
pub mod ipvs;
pub mod ownership;
pub mod scope;
pub mod survey;
pub mod wanted;

pub use drain::Draining;
pub use ownership::Ownership;
pub use scope::Scope;
pub use survey::Survey;
pub use wanted::{RealServers, Wanted, WantedService};

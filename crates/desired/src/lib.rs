//! The desired kernel state: a pure, deterministic function of the Service model, this node
//! and the configuration, kept up to date incrementally.
//!
//! It reproduces what kube-proxy's IPVS mode programs: IPVS virtual servers with their real
//! servers ([`ipvs`]), the addresses bound to `kube-ipvs0`, kube-proxy's ipsets with their
//! entries ([`ipset`]) and its iptables chains and rules ([`iptables`]), for both address
//! families. [`endpoints`] chooses the real servers of a Service port the way kube-proxy does;
//! [`plan`] computes one Service's share of the state; [`state`] adds the shares up and
//! recomputes only the Services that changed; [`render`] prints the result in the formats of
//! `ipvsadm -Sn`, `ipset save` and `iptables-save`, or as JSON. [`health_check`] says which
//! Services get kube-proxy's health check node port server and what it reports, for both
//! proxy modes.
//!
//! [`explain`] says why a Service does or does not reach each of its endpoints.
//!
//! [`claims`] decides who gets an address two Services claim, for both proxy modes.
//!
//! Nothing here touches the kernel. It uses the kernel-facing crates' values only: a virtual
//! server converts to the `ipvs` crate's service and destinations
//! ([`VirtualServer::kernel_service`]), which the dataplane programs and [`render`] spells with
//! `ipvs::spelling`, as `ipvsctl-rs` does; iptables rules are the `iptables` crate's typed
//! rules, which the writer applies and [`render`] prints.

pub mod claims;
pub mod config;
pub mod endpoints;
pub mod explain;
pub mod health_check;
pub mod ipset;
pub mod iptables;
pub mod ipvs;
pub mod no_local;
pub mod plan;
pub mod render;
pub mod state;

pub use claims::{Claim, Claims, Conflict, Origin};
pub use config::{Config, LocalDetector, NodeInfo, NodePortAddresses};
pub use health_check::{HealthCheck, Listen};
pub use ipset::{SetEntry, SetKind};
pub use ipvs::{Forward, Persistence, RealServer, ServicePortName, VirtualServer, VsKey};
pub use state::DesiredState;

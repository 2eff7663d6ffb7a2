//! A client for the Linux kernel's IPVS load balancer, speaking its generic
//! netlink family (`IPVS`) directly: no `ipvsadm` subprocess, no libnl.
//!
//! It covers the whole configuration protocol: module info, timeouts,
//! virtual services (by protocol/address/port or by firewall mark, IPv4
//! and IPv6, every scheduler, persistence, flags, persistence engines),
//! real servers (every forwarding method including GUE/GRE tunnels,
//! weights, thresholds, mixed families), 64-bit statistics, zeroing and
//! flushing, and a pipelined bulk [`Client::apply`].
//!
//! # Design
//!
//! - **Blocking, owned handle.** [`Client`] owns one netlink socket and its
//!   calls block until the kernel answers. IPVS answers synchronously
//!   (each command runs under one kernel mutex), so a call is a couple of
//!   syscalls; an async API would only add a runtime dependency and a
//!   state machine around the same syscalls. A short-lived CLI uses it
//!   directly; a tokio daemon runs it on a dedicated blocking thread
//!   (`spawn_blocking` or a thread owning the `Client`), and its bulk
//!   work is a single [`Client::apply`] call anyway.
//! - **Plain data.** [`Service`], [`ServiceKey`], [`Destination`] are
//!   configuration only: `Eq + Hash + Clone`, serde-serializable, so a
//!   reconciler can diff desired against actual. Live counters come
//!   alongside, in [`ServiceEntry`] and [`DestinationEntry`].
//! - **Types for the kernel's rules.** A fwmark key cannot be 0; the
//!   persistent flag and its timeout/netmask are one `Option`; the
//!   kernel-internal "hashed" flag is dropped when reading; netmasks are
//!   prefix lengths, encoded per family as the kernel wants.
//! - **Errors name the operation, the object and the errno's meaning for
//!   that operation** ([`ErrorKind`]), and "IPVS is not there at all" is its
//!   own variant ([`Error::NotAvailable`]).
//! - **Sans-IO core.** Messages are built and parsed by pure code (tested
//!   against golden bytes); the socket layer only sends and receives.
//!
//! # Examples
//!
//! ```no_run
//! # fn main() -> Result<(), ipvs::Error> {
//! use ipvs::{Change, Client, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceKey};
//!
//! let mut ipvs = Client::new()?;
//! println!("IP Virtual Server version {}", ipvs.info()?.version);
//!
//! let key = ServiceKey::inet(Protocol::Tcp, "10.96.0.1".parse().unwrap(), 443);
//! let mut changes = vec![Change::AddService(Service::new(key, Scheduler::RoundRobin))];
//! for ip in ["10.0.0.5", "10.0.0.6"] {
//!     let rs = Destination::new(ip.parse().unwrap(), 6443, ForwardMethod::Masquerade, 1);
//!     changes.push(Change::AddDestination(key, rs));
//! }
//! for (change, result) in changes.iter().zip(ipvs.apply(&changes)) {
//!     if let Err(e) = result {
//!         eprintln!("{change}: {e}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Minimum kernel version
//!
//! The generic netlink interface exists since Linux 2.6.28. Destination
//! address families (mixed IPv4/IPv6 pools) need 3.18, 64-bit statistics
//! 4.1 (older kernels' 32-bit counters are used instead), GUE tunnels 5.2,
//! GRE tunnels 5.3; the `twos` scheduler only exists in recent kernels
//! (Debian 12's 6.1 has no `ip_vs_twos`: adding a `twos` service fails with
//! [`ErrorKind::SchedulerNotFound`]).

mod addr;
mod batch;
mod change;
mod client;
mod config;
mod destination;
mod error;
mod info;
mod message;
mod nla;
mod overview;
mod rules;
mod scheduler;
mod service;
mod socket;
pub mod spelling;
mod stats;

#[cfg(test)]
mod tests;

pub use addr::{AddressFamily, Protocol, UnknownProtocol};
pub use change::Change;
pub use client::{Client, ServiceWithDestinations};
pub use config::Timeouts;
pub use destination::{Destination, DestinationEntry, ForwardMethod, TunnelFlags, TunnelType};
pub use error::{Error, ErrorKind, Object, Operation};
pub use info::{Info, Version};
pub use overview::{
    OverviewDestination, OverviewKey, OverviewService, ShownPersistence, read_overview,
};
pub use rules::{DestinationRule, ServiceRules};
pub use scheduler::{MAX_NAME_LEN, Scheduler};
pub use service::{Persistence, Service, ServiceEntry, ServiceFlags, ServiceKey};
pub use stats::{Rates, Stats};

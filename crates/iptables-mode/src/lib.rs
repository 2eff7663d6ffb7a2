//! kube-proxy's iptables mode, as desired tables for the [`iptables`] writer: the fallback
//! dataplane of kube-ipvs-proxy for kernels without IPVS.
//!
//! [`Generator`] turns the Service model ([`model::Model`]), this node
//! ([`desired::NodeInfo`]) and the proxy configuration ([`desired::Config`] and
//! [`Options`]) into one nat and one filter [`iptables::DesiredTable`] per address family
//! ([`Tables`]), with the chains and rules kube-proxy's iptables proxier
//! (`pkg/proxy/iptables/proxier.go`, Kubernetes 1.31–1.34) writes, under the same names:
//!
//! - nat: `KUBE-SERVICES` (cluster, external and load balancer IPs, then the jump to
//!   `KUBE-NODEPORTS`), `KUBE-NODEPORTS`, per Service port `KUBE-SVC-` (Cluster policy
//!   endpoints, random split with `statistic`, `recent` session affinity), `KUBE-SVL-`
//!   (Local policy endpoints), `KUBE-EXT-` (external traffic: masquerade, or the Local
//!   policy short-circuits), `KUBE-FW-` (load balancer source ranges), per endpoint
//!   `KUBE-SEP-` (hairpin masquerade and DNAT), `KUBE-MARK-MASQ` and `KUBE-POSTROUTING`;
//! - filter: `KUBE-SERVICES` (REJECT cluster IPs without endpoints),
//!   `KUBE-EXTERNAL-SERVICES` (REJECT/DROP external destinations without endpoints),
//!   `KUBE-NODEPORTS` (health check node ports), `KUBE-PROXY-FIREWALL` (DROP what a
//!   `KUBE-FW-` chain did not accept), `KUBE-FORWARD`, and kubelet's `KUBE-FIREWALL` when
//!   NodePorts answer on localhost;
//! - the jumps into them from the built-in chains, and an [`iptables::Ownership`] that
//!   claims every one of these chains ([`ownership`]).
//!
//! Endpoints are chosen by [`desired::endpoints::categorize`], exactly as in IPVS mode.
//! Chain names are kube-proxy's hashes ([`ServicePortName`]). Where this differs from
//! kube-proxy, on purpose, is listed in `docs/iptables-mode.md`: no `nfacct` counters, no
//! `KUBE-PROXY-CANARY` chains, and rules in a stable order (Services by namespace and
//! name) rather than Go's map order.
//!
//! The generator keeps each Service's share between syncs: [`Generator::update`] recomputes
//! only the Services that changed; [`Generator::tables`] assembles the tables, and the
//! writer rewrites only the chains that differ from the kernel's.
//!
//! ```
//! use desired::{Config, NodeInfo};
//! use iptables_mode::{Generator, Options, render};
//! use model::{IpFamily, Model, ProxyFilter};
//!
//! let model = Model::new(ProxyFilter::default(), None);
//! let generator = Generator::new(Config::default(), Options::default(), NodeInfo::default(), &model);
//! for family in generator.families() {
//!     let tables = generator.tables(family).unwrap();
//!     // Apply with `iptables::Iptables::new(tables.family, backend).sync(table)` for each
//!     // of `tables.iter()`; here, print them.
//!     assert!(render(&tables.nat).contains("-A KUBE-MARK-MASQ -j MARK --or-mark 0x004000"));
//! }
//! ```

mod chains;
mod names;
mod part;
mod port;
mod render;
mod service;
mod state;
mod tables;

pub use chains::{
    EXTERNAL_SERVICES, FORWARD, KUBELET_FIREWALL, MARK_MASQ, NODE_PORTS, POSTROUTING, PROXY_CANARY,
    PROXY_FIREWALL, SERVICES, ownership,
};
pub use names::{ENDPOINT_PREFIX, PortChain, SERVICE_CHAIN_PREFIXES, ServicePortName};
pub use render::render;
pub use state::{Generator, LARGE_CLUSTER_ENDPOINTS};
pub use tables::{Tables, writer_family};

use model::{IpFamily, ObjectId};

/// The iptables-mode settings that IPVS mode has no use for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `iptables.localhostNodePorts` (default true): IPv4 NodePorts also answer on
    /// 127.0.0.0/8 when `nodePortAddresses` admits loopback. The daemon must then set
    /// `net.ipv4.conf.all.route_localnet=1`, as kube-proxy does; the rules add kubelet's
    /// `KUBE-FIREWALL` guard against martian packets to 127.0.0.0/8.
    pub localhost_node_ports: bool,
    /// Whether `net.netfilter.nf_conntrack_tcp_be_liberal` is set on the node: kube-proxy
    /// then leaves out the rule dropping conntrack-INVALID packets in `KUBE-FORWARD`.
    pub conntrack_tcp_be_liberal: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            localhost_node_ports: true,
            conntrack_tcp_be_liberal: false,
        }
    }
}

/// Why rules could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Service's rules cannot be written (a name with a line break); it is left out.
    #[error("Service {service}: its iptables rules cannot be written: {source}")]
    Service {
        /// The Service.
        service: ObjectId,
        /// What was wrong with the rule.
        #[source]
        source: Box<iptables::Error>,
    },
    /// A rule of the fixed chains cannot be written (from the configuration).
    #[error("{family} tables: a fixed rule cannot be written: {source}")]
    Fixed {
        /// The family.
        family: IpFamily,
        /// What was wrong with the rule.
        #[source]
        source: Box<iptables::Error>,
    },
}

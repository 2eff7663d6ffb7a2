//! The ownership rule's configured half, assembled with the node's facts in
//! one place for syncs and `--cleanup` alike.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use reconcile::Ownership;

/// What the configuration says about which virtual servers are ours.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `ipvs.excludeCIDRs`: virtual servers there are never touched.
    pub exclude_cidrs: Vec<IpNet>,
    /// `--service-node-port-range`: virtual servers on node addresses with
    /// these ports are ours.
    pub node_port_range: RangeInclusive<u16>,
}

impl Owner {
    /// The rule ([`Ownership`]) with the addresses bound (or about to be) to
    /// `kube-ipvs0` and the node addresses that carry NodePorts.
    pub fn ownership(
        &self,
        dummy_addresses: BTreeSet<IpAddr>,
        node_port_addresses: BTreeSet<IpAddr>,
    ) -> Ownership {
        Ownership {
            exclude: self.exclude_cidrs.clone(),
            dummy_addresses,
            node_port_addresses,
            node_port_range: self.node_port_range.clone(),
        }
    }
}

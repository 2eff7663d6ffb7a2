//! Which virtual servers in the kernel are ours.
//!
//! The node may run other IPVS services (keepalived, a hand-made LVS) that we
//! must never touch. A virtual server is ours when its address is not in
//! `excludeCIDRs` and either
//! - its address is bound to `kube-ipvs0` (cluster, external and load
//!   balancer IPs: nothing else puts addresses there), or
//! - its address is one of the node addresses NodePorts use and its port is in
//!   the NodePort range (`--service-node-port-range`, 30000-32767 by default).
//!
//! Firewall-mark virtual servers are never ours: we do not create any.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use ipvs::ServiceKey;

/// The rule above, with the node's current facts.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// `excludeCIDRs`: never ours.
    pub exclude: Vec<IpNet>,
    /// Addresses bound to `kube-ipvs0` (observed) or about to be (desired).
    pub dummy_addresses: BTreeSet<IpAddr>,
    /// Node addresses that carry NodePorts.
    pub node_port_addresses: BTreeSet<IpAddr>,
    /// The cluster's NodePort range.
    pub node_port_range: RangeInclusive<u16>,
}

impl Ownership {
    /// The default NodePort range of the API server.
    pub const DEFAULT_NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

    /// Whether the virtual server with this key is ours to change or delete.
    pub fn owns(&self, key: &ServiceKey) -> bool {
        let ServiceKey::Inet { addr, port, .. } = key else {
            return false;
        };
        if self.exclude.iter().any(|net| net.contains(addr)) {
            return false;
        }
        self.dummy_addresses.contains(addr)
            || (self.node_port_addresses.contains(addr) && self.node_port_range.contains(port))
    }

    /// The keys of the observed virtual servers that are ours: what
    /// `--cleanup` deletes, in listing order.
    pub fn owned(&self, observed: &[ipvs::ServiceWithDestinations]) -> Vec<ServiceKey> {
        observed
            .iter()
            .map(|s| s.service.service.key)
            .filter(|k| self.owns(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::{AddressFamily, Protocol};

    fn rule() -> Ownership {
        Ownership {
            exclude: vec!["10.96.100.0/24".parse().unwrap()],
            dummy_addresses: ["10.96.0.10", "10.96.100.1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            node_port_addresses: ["192.168.1.10".parse().unwrap()].into(),
            node_port_range: Ownership::DEFAULT_NODE_PORT_RANGE,
        }
    }

    fn key(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::inet(Protocol::Tcp, addr.parse().unwrap(), port)
    }

    #[test]
    fn owns_dummy_addresses_and_node_ports_only() {
        let rule = rule();
        assert!(rule.owns(&key("10.96.0.10", 53)));
        assert!(rule.owns(&key("192.168.1.10", 30080)));
        assert!(
            !rule.owns(&key("192.168.1.10", 80)),
            "a host service on the node IP"
        );
        assert!(
            !rule.owns(&key("192.168.1.99", 30080)),
            "not a node-port address"
        );
        assert!(
            !rule.owns(&key("10.96.100.1", 80)),
            "excluded although on kube-ipvs0"
        );
        assert!(!rule.owns(&ServiceKey::fwmark(AddressFamily::Inet, 7).unwrap()));
    }

    #[test]
    fn cleanup_deletes_only_what_is_owned() {
        let listed = |k: ServiceKey| ipvs::ServiceWithDestinations {
            service: ipvs::ServiceEntry {
                service: ipvs::Service::new(k, ipvs::Scheduler::from("rr".to_owned())),
                stats: ipvs::Stats::default(),
            },
            destinations: Vec::new(),
        };
        let observed = [
            listed(key("10.96.0.10", 53)),
            listed(key("192.168.1.10", 80)),
            listed(key("192.168.1.10", 30080)),
            listed(key("10.96.100.1", 80)),
        ];
        assert_eq!(
            rule().owned(&observed),
            vec![key("10.96.0.10", 53), key("192.168.1.10", 30080)]
        );
    }
}

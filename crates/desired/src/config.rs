//! The inputs besides the model: proxy configuration and what is known of this node.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use model::{IpFamily, Scheduler};
use serde::Serialize;

/// How kube-proxy tells traffic from local pods apart (`detectLocalMode`), for the ClusterIP
/// masquerade rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum LocalDetector {
    /// No detector: node-originated traffic with a VIP source is masqueraded instead.
    #[default]
    None,
    /// `ClusterCIDR`: pod traffic comes from these CIDRs (at most one per family is used).
    ClusterCidr(Vec<IpNet>),
    /// `BridgeInterface`: pod traffic enters through this bridge.
    BridgeInterface(String),
    /// `InterfaceNamePrefix`: pod traffic enters through interfaces with this prefix.
    InterfaceNamePrefix(String),
}

impl LocalDetector {
    /// The words of the iptables match meaning "not from a local pod" (`! -s CIDR`,
    /// `! -i NAME`), if the detector works for `family`.
    pub fn if_not_local(&self, family: IpFamily) -> Option<Vec<String>> {
        let (option, value) = self.source(family)?;
        Some(vec!["!".to_owned(), option.to_owned(), value])
    }

    /// The words of the iptables match meaning "from a local pod" (kube-proxy's `IfLocal`),
    /// if the detector works for `family`.
    pub fn if_local(&self, family: IpFamily) -> Option<Vec<String>> {
        let (option, value) = self.source(family)?;
        Some(vec![option.to_owned(), value])
    }

    /// The option and value telling local pod traffic apart in `family`.
    fn source(&self, family: IpFamily) -> Option<(&'static str, String)> {
        match self {
            LocalDetector::None => None,
            LocalDetector::ClusterCidr(cidrs) => cidrs
                .iter()
                .find(|c| IpFamily::of(&c.addr()) == family)
                .map(|c| ("-s", c.to_string())),
            LocalDetector::BridgeInterface(name) => Some(("-i", name.clone())),
            LocalDetector::InterfaceNamePrefix(prefix) => Some(("-i", format!("{prefix}+"))),
        }
    }
}

/// Which node addresses get NodePort virtual servers (`nodePortAddresses`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum NodePortAddresses {
    /// Every local address (kube-proxy's default when the list is empty).
    #[default]
    All,
    /// Local addresses inside these CIDRs, plus the node's primary IPs if `primary`.
    Select {
        /// The CIDRs.
        cidrs: Vec<IpNet>,
        /// Whether the keyword `primary` was given.
        primary: bool,
    },
}

/// The proxy configuration the desired state depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// The default scheduler (`ipvs.scheduler`, default `rr`).
    pub scheduler: Scheduler,
    /// `masqueradeAll`: masquerade all traffic to cluster IPs.
    pub masquerade_all: bool,
    /// `detectLocalMode` with its data.
    pub local_detector: LocalDetector,
    /// `nodePortAddresses`.
    pub node_port_addresses: NodePortAddresses,
    /// `iptables.masqueradeBit` (default 14, mark `0x004000`).
    pub masquerade_bit: u8,
    /// Whether the MASQUERADE rule gets `--random-fully` (kube-proxy adds it when iptables
    /// supports it, i.e. iptables >= 1.6.2).
    pub random_fully: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            scheduler: Scheduler::Rr,
            masquerade_all: false,
            local_detector: LocalDetector::None,
            node_port_addresses: NodePortAddresses::All,
            masquerade_bit: 14,
            random_fully: true,
        }
    }
}

impl Config {
    /// The masquerade mark as kube-proxy spells it in rules (`%#08x`: `0x004000`).
    pub fn masquerade_mark(&self) -> String {
        format!("{:#08x}", 1u32 << self.masquerade_bit.min(31))
    }

    /// The same mark as `iptables-save` prints it (`0x4000`).
    pub fn saved_masquerade_mark(&self) -> String {
        format!("{:#x}", 1u32 << self.masquerade_bit.min(31))
    }
}

/// What the desired state needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeInfo {
    /// The node name; endpoints whose `nodeName` equals it are local.
    pub name: String,
    /// The `topology.kubernetes.io/zone` label, for topology hints.
    pub zone: Option<String>,
    /// The primary IP per family (from the Node object or `--node-ip`).
    pub primary_ips: Vec<IpAddr>,
    /// Every address on the node's interfaces except `kube-ipvs0`. External and load balancer
    /// IPs found here are not bound to `kube-ipvs0`; NodePorts listen on these.
    pub addresses: BTreeSet<IpAddr>,
}

impl NodeInfo {
    /// The node as its Node object describes it: primary IPs are the first InternalIP/ExternalIP
    /// of each family unless `primary_override` (`--node-ip`) names them; the node's addresses
    /// are taken to be the primary IPs and the Node's listed addresses.
    pub fn from_node(
        name: &str,
        node: Option<&model::Node>,
        primary_override: &[IpAddr],
    ) -> NodeInfo {
        let listed: &[IpAddr] = node.map_or(&[], |n| n.addresses.as_slice());
        let source = if primary_override.is_empty() {
            listed
        } else {
            primary_override
        };
        let primary_ips: Vec<IpAddr> = IpFamily::ALL
            .into_iter()
            .filter_map(|f| source.iter().copied().find(|ip| IpFamily::of(ip) == f))
            .collect();
        NodeInfo {
            name: name.to_owned(),
            zone: node.and_then(|n| n.zone.clone()),
            addresses: primary_ips.iter().chain(listed).copied().collect(),
            primary_ips,
        }
    }

    /// The primary IP of a family.
    pub fn primary_ip(&self, family: IpFamily) -> Option<IpAddr> {
        self.primary_ips
            .iter()
            .copied()
            .find(|ip| IpFamily::of(ip) == family)
    }

    /// The families this node proxies: those it has a primary IP in (IPv4 when it has none),
    /// as kube-proxy runs one proxier per family the node has an IP in.
    pub fn families(&self) -> Vec<IpFamily> {
        let families: Vec<IpFamily> = IpFamily::ALL
            .into_iter()
            .filter(|f| self.primary_ip(*f).is_some())
            .collect();
        if families.is_empty() {
            vec![IpFamily::V4]
        } else {
            families
        }
    }

    /// The addresses that get NodePort virtual servers, for one family, in address order.
    pub fn node_port_ips(&self, family: IpFamily, which: &NodePortAddresses) -> Vec<IpAddr> {
        let of_family = self
            .addresses
            .iter()
            .copied()
            .filter(|ip| IpFamily::of(ip) == family && !ip.is_loopback());
        let mut ips: BTreeSet<IpAddr> = match which {
            NodePortAddresses::All => of_family.collect(),
            NodePortAddresses::Select { cidrs, primary } => of_family
                .filter(|ip| cidrs.iter().any(|c| c.contains(ip)))
                .chain(self.primary_ip(family).filter(|_| *primary))
                .collect(),
        };
        ips.retain(|ip| !ip.is_loopback());
        ips.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            zone: None,
            primary_ips: vec![ip("172.18.0.2"), ip("fd00::2")],
            addresses: ["172.18.0.2", "10.0.0.5", "127.0.0.1", "fd00::2", "::1"]
                .into_iter()
                .map(ip)
                .collect(),
        }
    }

    #[test]
    fn node_port_addresses_follow_node_port_addresses() {
        let n = node();
        assert_eq!(
            n.node_port_ips(IpFamily::V4, &NodePortAddresses::All),
            vec![ip("10.0.0.5"), ip("172.18.0.2")],
            "every non-loopback address of the family"
        );
        let primary = NodePortAddresses::Select {
            cidrs: Vec::new(),
            primary: true,
        };
        assert_eq!(n.node_port_ips(IpFamily::V6, &primary), vec![ip("fd00::2")]);
        let cidr = NodePortAddresses::Select {
            cidrs: vec![
                "10.0.0.0/8".parse().expect("cidr"),
                "127.0.0.0/8".parse().expect("cidr"),
            ],
            primary: false,
        };
        assert_eq!(
            n.node_port_ips(IpFamily::V4, &cidr),
            vec![ip("10.0.0.5")],
            "never loopback"
        );
        assert_eq!(n.families(), vec![IpFamily::V4, IpFamily::V6]);
    }

    #[test]
    fn local_detector_matches_per_family() {
        let d = LocalDetector::ClusterCidr(vec!["10.244.0.0/16".parse().expect("cidr")]);
        assert_eq!(
            d.if_not_local(IpFamily::V4),
            Some(vec!["!".into(), "-s".into(), "10.244.0.0/16".into()])
        );
        assert_eq!(d.if_not_local(IpFamily::V6), None);
        assert_eq!(
            d.if_local(IpFamily::V4),
            Some(vec!["-s".into(), "10.244.0.0/16".into()])
        );
        assert_eq!(
            LocalDetector::InterfaceNamePrefix("veth".into()).if_not_local(IpFamily::V6),
            Some(vec!["!".into(), "-i".into(), "veth+".into()])
        );
        assert_eq!(Config::default().masquerade_mark(), "0x004000");
        assert_eq!(Config::default().saved_masquerade_mark(), "0x4000");
    }
}

//! kube-proxy's ipsets: names, types, comments and entries.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use model::{IpFamily, Protocol};
use serde::Serialize;

/// The ipset types kube-proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SetType {
    /// `hash:ip`.
    HashIp,
    /// `hash:ip,port`.
    HashIpPort,
    /// `hash:ip,port,ip`.
    HashIpPortIp,
    /// `hash:ip,port,net`.
    HashIpPortNet,
    /// `bitmap:port` (range 0-65535).
    BitmapPort,
}

impl SetType {
    /// ipset's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::BitmapPort => "bitmap:port",
        }
    }

    /// The create options kube-proxy passes (`ipset create NAME TYPE <options>`).
    pub fn create_options(self, family: IpFamily) -> String {
        match self {
            SetType::BitmapPort => "range 0-65535".to_owned(),
            _ => format!(
                "family {} hashsize 1024 maxelem 65536",
                match family {
                    IpFamily::V4 => "inet",
                    IpFamily::V6 => "inet6",
                }
            ),
        }
    }
}

macro_rules! sets {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $ty:ident, $comment:literal;)*) => {
        /// One of kube-proxy's ipsets, in kube-proxy's creation order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum SetKind {
            $($(#[$doc])* $variant,)*
        }

        impl SetKind {
            /// Every set, in creation order.
            pub const ALL: &'static [SetKind] = &[$(SetKind::$variant,)*];

            /// The IPv4 name.
            pub fn base_name(self) -> &'static str {
                match self { $(SetKind::$variant => $name,)* }
            }

            /// The set type.
            pub fn set_type(self) -> SetType {
                match self { $(SetKind::$variant => SetType::$ty,)* }
            }

            /// The comment kube-proxy puts on the iptables rule matching the set.
            pub fn comment(self) -> &'static str {
                match self { $(SetKind::$variant => $comment,)* }
            }
        }
    };
}

sets! {
    /// Local endpoints, for hairpin masquerade.
    LoopBack = "KUBE-LOOP-BACK", HashIpPortIp, "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose";
    /// Cluster IP + port.
    ClusterIp = "KUBE-CLUSTER-IP", HashIpPort, "Kubernetes service cluster ip + port for masquerade purpose";
    /// External IP + port (externalTrafficPolicy Cluster).
    ExternalIp = "KUBE-EXTERNAL-IP", HashIpPort, "Kubernetes service external ip + port for masquerade and filter purpose";
    /// External IP + port (externalTrafficPolicy Local).
    ExternalIpLocal = "KUBE-EXTERNAL-IP-LOCAL", HashIpPort, "Kubernetes service external ip + port with externalTrafficPolicy=local";
    /// Load balancer IP + port.
    LoadBalancer = "KUBE-LOAD-BALANCER", HashIpPort, "Kubernetes service lb portal";
    /// Load balancer IP + port with source ranges.
    LoadBalancerFw = "KUBE-LOAD-BALANCER-FW", HashIpPort, "Kubernetes service load balancer ip + port for load balancer with sourceRange";
    /// Load balancer IP + port (externalTrafficPolicy Local).
    LoadBalancerLocal = "KUBE-LOAD-BALANCER-LOCAL", HashIpPort, "Kubernetes service load balancer ip + port with externalTrafficPolicy=local";
    /// Load balancer IP + port + the load balancer IP as source (node access).
    LoadBalancerSourceIp = "KUBE-LOAD-BALANCER-SOURCE-IP", HashIpPortIp, "Kubernetes service load balancer ip + port + source IP for packet filter purpose";
    /// Load balancer IP + port + allowed source CIDR.
    LoadBalancerSourceCidr = "KUBE-LOAD-BALANCER-SOURCE-CIDR", HashIpPortNet, "Kubernetes service load balancer ip + port + source cidr for packet filter purpose";
    /// TCP node ports.
    NodePortTcp = "KUBE-NODE-PORT-TCP", BitmapPort, "Kubernetes nodeport TCP port for masquerade purpose";
    /// TCP node ports (externalTrafficPolicy Local).
    NodePortLocalTcp = "KUBE-NODE-PORT-LOCAL-TCP", BitmapPort, "Kubernetes nodeport TCP port with externalTrafficPolicy=local";
    /// UDP node ports.
    NodePortUdp = "KUBE-NODE-PORT-UDP", BitmapPort, "Kubernetes nodeport UDP port for masquerade purpose";
    /// UDP node ports (externalTrafficPolicy Local).
    NodePortLocalUdp = "KUBE-NODE-PORT-LOCAL-UDP", BitmapPort, "Kubernetes nodeport UDP port with externalTrafficPolicy=local";
    /// SCTP node ports, per node IP.
    NodePortSctp = "KUBE-NODE-PORT-SCTP-HASH", HashIpPort, "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'";
    /// SCTP node ports, per node IP (externalTrafficPolicy Local).
    NodePortLocalSctp = "KUBE-NODE-PORT-LOCAL-SCTP-HASH", HashIpPort, "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'";
    /// Health check node ports.
    HealthCheckNodePort = "KUBE-HEALTH-CHECK-NODE-PORT", BitmapPort, "Kubernetes health check node port";
    /// The addresses bound to kube-ipvs0.
    IpvsIps = "KUBE-IPVS-IPS", HashIp, "Addresses on the ipvs interface";
}

/// The longest set name ipset accepts.
const MAX_SET_NAME: usize = 31;

impl SetKind {
    /// The set's name in a family: IPv6 sets are `KUBE-6-…`, cut to ipset's 31 characters.
    pub fn name(self, family: IpFamily) -> String {
        let base = self.base_name();
        match family {
            IpFamily::V4 => base.to_owned(),
            IpFamily::V6 => {
                let mut name = base.replacen("KUBE-", "KUBE-6-", 1);
                name.truncate(MAX_SET_NAME);
                name
            }
        }
    }

    /// The node port set of a protocol, plain or for `externalTrafficPolicy: Local`.
    pub fn node_port(protocol: Protocol, local: bool) -> SetKind {
        match (protocol, local) {
            (Protocol::Tcp, false) => SetKind::NodePortTcp,
            (Protocol::Tcp, true) => SetKind::NodePortLocalTcp,
            (Protocol::Udp, false) => SetKind::NodePortUdp,
            (Protocol::Udp, true) => SetKind::NodePortLocalUdp,
            (Protocol::Sctp, false) => SetKind::NodePortSctp,
            (Protocol::Sctp, true) => SetKind::NodePortLocalSctp,
        }
    }
}

/// One set member, printed as `ipset` prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SetEntry {
    /// `hash:ip`: `IP`.
    Ip(IpAddr),
    /// `hash:ip,port`: `IP,proto:port`.
    IpPort(IpAddr, Protocol, u16),
    /// `hash:ip,port,ip`: `IP,proto:port,IP2`.
    IpPortIp(IpAddr, Protocol, u16, IpAddr),
    /// `hash:ip,port,net`: `IP,proto:port,CIDR`.
    IpPortNet(IpAddr, Protocol, u16, IpNet),
    /// `bitmap:port`: `port`.
    Port(u16),
}

impl fmt::Display for SetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetEntry::Ip(ip) => write!(f, "{ip}"),
            SetEntry::IpPort(ip, proto, port) => write!(f, "{ip},{proto}:{port}"),
            SetEntry::IpPortIp(ip, proto, port, ip2) => write!(f, "{ip},{proto}:{port},{ip2}"),
            SetEntry::IpPortNet(ip, proto, port, net) => write!(f, "{ip},{proto}:{port},{net}"),
            SetEntry::Port(port) => write!(f, "{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_names_are_prefixed_and_cut_to_31() {
        assert_eq!(SetKind::ClusterIp.name(IpFamily::V6), "KUBE-6-CLUSTER-IP");
        assert_eq!(
            SetKind::LoadBalancerSourceCidr.name(IpFamily::V6),
            "KUBE-6-LOAD-BALANCER-SOURCE-CID"
        );
        assert_eq!(
            SetKind::NodePortLocalSctp.name(IpFamily::V6),
            "KUBE-6-NODE-PORT-LOCAL-SCTP-HAS"
        );
        assert_eq!(
            SetKind::HealthCheckNodePort.name(IpFamily::V6),
            "KUBE-6-HEALTH-CHECK-NODE-PORT"
        );
        assert_eq!(SetKind::ALL.len(), 17);
    }
}

//! What one Service contributes to one family's tables, and what it depends on besides the
//! Service: the types [`crate::service`] builds and [`crate::port`], [`crate::state`] and
//! [`crate::tables`] use.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::{Claims, Config, NodeInfo};
use iptables::{Chain, Rule, Table};
use model::IpFamily;

/// A chain every Service adds rules to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Shared {
    /// nat `KUBE-SERVICES`: cluster, external and load balancer IPs.
    NatServices,
    /// nat `KUBE-NODEPORTS`: node ports.
    NatNodePorts,
    /// filter `KUBE-SERVICES`: cluster IPs without endpoints.
    FilterServices,
    /// filter `KUBE-EXTERNAL-SERVICES`: external destinations without endpoints.
    FilterExternalServices,
    /// filter `KUBE-NODEPORTS`: health check node ports.
    FilterNodePorts,
    /// filter `KUBE-PROXY-FIREWALL`: load balancer IPs with source ranges.
    FilterProxyFirewall,
}

impl Shared {
    /// Every shared chain.
    pub(crate) const ALL: [Shared; 6] = [
        Shared::NatServices,
        Shared::NatNodePorts,
        Shared::FilterServices,
        Shared::FilterExternalServices,
        Shared::FilterNodePorts,
        Shared::FilterProxyFirewall,
    ];

    /// The table the chain is in.
    pub(crate) fn table(self) -> Table {
        match self {
            Shared::NatServices | Shared::NatNodePorts => Table::Nat,
            _ => Table::Filter,
        }
    }

    /// The chain's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Shared::NatServices | Shared::FilterServices => crate::chains::SERVICES,
            Shared::NatNodePorts | Shared::FilterNodePorts => crate::chains::NODE_PORTS,
            Shared::FilterExternalServices => crate::chains::EXTERNAL_SERVICES,
            Shared::FilterProxyFirewall => crate::chains::PROXY_FIREWALL,
        }
    }
}

/// What one Service contributes to one family's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServicePart {
    /// Rules for the shared chains, in order.
    pub(crate) shared: Vec<(Shared, Rule)>,
    /// The Service's own nat chains (`KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-`, `KUBE-FW-`,
    /// `KUBE-SEP-`), complete.
    pub(crate) chains: Vec<Chain>,
    /// How many endpoints the Service has in the family, over all its ports (see
    /// [`endpoint_count`]).
    pub(crate) endpoints: usize,
    /// Where its UDP ports take datagrams (cluster, external and load balancer IPs, and
    /// node addresses with the node port), with the addresses of the serving endpoints
    /// behind them: what a conntrack flow to that destination may be translated to.
    /// Ports without a serving endpoint are left out.
    pub(crate) udp: Vec<UdpDestination>,
}

/// A UDP destination of a Service and the endpoint addresses behind it.
pub(crate) type UdpDestination = ((IpAddr, u16), BTreeSet<IpAddr>);

/// What the rules of a family depend on besides the Service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The family.
    pub(crate) family: IpFamily,
    /// This node.
    pub(crate) node: &'a NodeInfo,
    /// The proxy configuration.
    pub(crate) config: &'a Config,
    /// kube-proxy's large-cluster mode: endpoint rules carry no comments.
    pub(crate) large_cluster: bool,
    /// Who has each address: an external or load balancer IP another Service has gets no
    /// rules here.
    pub(crate) claims: &'a Claims,
}

impl Context<'_> {
    /// The items whose address (`addr`) is in the context's family.
    pub(crate) fn of_family<T: Copy>(&self, items: &[T], addr: impl Fn(&T) -> IpAddr) -> Vec<T> {
        items
            .iter()
            .copied()
            .filter(|i| IpFamily::of(&addr(i)) == self.family)
            .collect()
    }
}

//! One Service's share of the tables, in one family: its own chains and the rules it adds to
//! the chains every Service shares.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::endpoints::{self, PortEndpoint};
use desired::{Claims, Config, NodeInfo, VsKey};
use iptables::{Chain, Rule, Table};
use model::{EndpointSlice, IpFamily, Protocol, Service};

use crate::port::{PortInput, port_rules};

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
    fn of_family<T: Copy>(&self, items: &[T], addr: impl Fn(&T) -> IpAddr) -> Vec<T> {
        items
            .iter()
            .copied()
            .filter(|i| IpFamily::of(&addr(i)) == self.family)
            .collect()
    }
}

/// How many endpoints the Service has in `family`, over all its ports (what kube-proxy
/// counts to choose large-cluster mode).
pub(crate) fn endpoint_count(
    svc: &Service,
    slices: &[&EndpointSlice],
    family: IpFamily,
    node_name: &str,
) -> usize {
    if svc.cluster_ip(family).is_none() {
        return 0;
    }
    svc.ports
        .iter()
        .map(|p| endpoints::of_port(slices, p, family, node_name).len())
        .sum()
}

/// The Service's share of `ctx.family`'s tables: nothing when it has no cluster IP there.
///
/// # Errors
/// A rule `iptables-restore` could not read (a name with a line break).
pub(crate) fn service_part(
    svc: &Service,
    slices: &[&EndpointSlice],
    ctx: &Context<'_>,
) -> Result<ServicePart, iptables::Error> {
    let mut part = ServicePart::default();
    let Some(cluster_ip) = svc.cluster_ip(ctx.family) else {
        return Ok(part);
    };
    let external_ips = ctx.of_family(&svc.external_ips, |ip| *ip);
    let lb_ips = ctx.of_family(&svc.load_balancer_ips, |ip| *ip);
    let source_ranges = ctx.of_family(&svc.source_ranges, |net| net.addr());
    for port in &svc.ports {
        let eps: Vec<PortEndpoint<'_>> =
            endpoints::of_port(slices, port, ctx.family, &ctx.node.name);
        part.endpoints += eps.len();
        let held = |ips: &[IpAddr]| -> Vec<IpAddr> {
            let key = |addr: IpAddr| VsKey {
                protocol: port.protocol,
                addr,
                port: port.port,
            };
            (ips.iter().copied())
                .filter(|ip| ctx.claims.wins(&svc.id, &key(*ip)))
                .collect()
        };
        let (external_ips, lb_ips) = (held(&external_ips), held(&lb_ips));
        let input = PortInput {
            svc,
            port,
            cluster_ip,
            external_ips: &external_ips,
            lb_ips: &lb_ips,
            source_ranges: &source_ranges,
        };
        port_rules(&input, &eps, ctx, &mut part)?;
        if port.protocol == Protocol::Udp {
            part.udp.extend(udp_destinations(&input, &eps, ctx));
        }
    }
    Ok(part)
}

/// A UDP port's destinations with its serving endpoints, whatever the traffic policies
/// (kube-proxy's `CleanStaleEntries`: a policy change must not cut existing flows); none
/// when it has no serving endpoint.
fn udp_destinations(
    input: &PortInput<'_>,
    eps: &[PortEndpoint<'_>],
    ctx: &Context<'_>,
) -> Vec<UdpDestination> {
    let serving: BTreeSet<IpAddr> = eps.iter().filter(|e| e.serving).map(|e| e.addr).collect();
    if serving.is_empty() {
        return Vec::new();
    }
    let port = input.port.port;
    let service_ips = std::iter::once(input.cluster_ip)
        .chain(input.external_ips.iter().copied())
        .chain(input.lb_ips.iter().copied())
        .map(|ip| (ip, port));
    let node_ports = input.port.node_port.into_iter().flat_map(|node_port| {
        ctx.node
            .addresses
            .iter()
            .filter(|ip| IpFamily::of(ip) == ctx.family)
            .map(move |ip| (*ip, node_port))
    });
    service_ips
        .chain(node_ports)
        .map(|destination| (destination, serving.clone()))
        .collect()
}

//! One Service's share of the tables, in one family: its own chains and the rules it adds to
//! the chains every Service shares.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::VsKey;
use desired::endpoints::{self, PortEndpoint};
use model::{EndpointSlice, IpFamily, Protocol, Service};

use crate::part::{Context, ServicePart, UdpDestination};
use crate::port::{PortInput, port_rules};

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

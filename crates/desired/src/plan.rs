//! One Service's share of the desired state, as kube-proxy's `syncProxyRules` computes it for
//! each Service port, in each family the Service has a cluster IP in.

use std::net::IpAddr;

use model::{EndpointSlice, IpFamily, Service, ServicePort, SessionAffinity};
use serde::Serialize;

use crate::config::{Config, NodeInfo};
use crate::endpoints::{self, Policy, PortEndpoint, Selection};
use crate::ipset::{SetEntry, SetKind};
use crate::ipvs::{Persistence, RealServer, ServicePortName, VirtualServer, VsKey};

/// A load balancer VIP the node itself may not reach, because no source range contains the
/// node's IP: `-A KUBE-IPVS-OUT-FILTER -s IP -m ipvs --vaddr IP --vproto P --vport N -j DROP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OutFilterDrop {
    /// The load balancer IP.
    pub addr: IpAddr,
    /// The protocol.
    pub protocol: model::Protocol,
    /// The port.
    pub port: u16,
}

/// Everything one Service contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePlan {
    /// Its virtual servers.
    pub virtual_servers: Vec<VirtualServer>,
    /// Addresses it needs on `kube-ipvs0`.
    pub addresses: Vec<IpAddr>,
    /// Its ipset entries.
    pub entries: Vec<(IpFamily, SetKind, SetEntry)>,
    /// Its load balancer VIPs closed to the node itself.
    pub out_filter: Vec<OutFilterDrop>,
}

/// Computes a Service's share of the desired state.
pub fn plan(
    svc: &Service,
    slices: &[&EndpointSlice],
    node: &NodeInfo,
    config: &Config,
) -> ServicePlan {
    let mut plan = ServicePlan::default();
    for family in node.families() {
        let Some(ctx) = FamilyContext::new(svc, family, node, config) else {
            continue;
        };
        for port in &svc.ports {
            ctx.plan_port(port, slices, &mut plan);
        }
    }
    plan.shrink_to_fit();
    plan
}

/// One Service port's share of the desired state in one family, with what chose its real
/// servers.
#[derive(Debug, Clone)]
pub struct PortPlan<'a> {
    /// What the port contributes.
    pub plan: ServicePlan,
    /// Its endpoints in the family ([`endpoints::of_port`]).
    pub endpoints: Vec<PortEndpoint<'a>>,
    /// Its traffic policies.
    pub policy: Policy,
    /// The node addresses its node port listens on.
    pub node_port_ips: Vec<IpAddr>,
}

/// [`plan`] for one port in one family; `None` when the node does not proxy `family` or the
/// Service has no cluster IP in it.
pub fn port_plan<'a>(
    svc: &Service,
    slices: &[&'a EndpointSlice],
    node: &NodeInfo,
    config: &Config,
    family: IpFamily,
    port: &ServicePort,
) -> Option<PortPlan<'a>> {
    if !node.families().contains(&family) {
        return None;
    }
    let ctx = FamilyContext::new(svc, family, node, config)?;
    let mut plan = ServicePlan::default();
    let (endpoints, policy) = ctx.plan_port(port, slices, &mut plan);
    Some(PortPlan {
        plan,
        endpoints,
        policy,
        node_port_ips: ctx.node_port_ips,
    })
}

impl ServicePlan {
    /// Gives back the room the vectors grew into: the desired state keeps every Service's
    /// plan, and a plan of one virtual server would otherwise hold room for four.
    fn shrink_to_fit(&mut self) {
        self.virtual_servers.shrink_to_fit();
        self.addresses.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.out_filter.shrink_to_fit();
    }
}

struct FamilyContext<'a> {
    svc: &'a Service,
    family: IpFamily,
    cluster_ip: IpAddr,
    node: &'a NodeInfo,
    config: &'a Config,
    node_port_ips: Vec<IpAddr>,
}

impl<'a> FamilyContext<'a> {
    fn new(
        svc: &'a Service,
        family: IpFamily,
        node: &'a NodeInfo,
        config: &'a Config,
    ) -> Option<FamilyContext<'a>> {
        Some(FamilyContext {
            svc,
            family,
            cluster_ip: svc.cluster_ip(family)?,
            node,
            config,
            node_port_ips: node.node_port_ips(family, &config.node_port_addresses),
        })
    }

    fn of_family<'s>(&self, ips: &'s [IpAddr]) -> impl Iterator<Item = IpAddr> + 's {
        let family = self.family;
        ips.iter()
            .copied()
            .filter(move |ip| IpFamily::of(ip) == family)
    }

    /// Adds the port's share to `plan`; returns its endpoints and policies.
    fn plan_port<'s>(
        &self,
        port: &ServicePort,
        slices: &[&'s EndpointSlice],
        plan: &mut ServicePlan,
    ) -> (Vec<PortEndpoint<'s>>, Policy) {
        let (svc, family, proto) = (self.svc, self.family, port.protocol);
        let eps = endpoints::of_port(slices, port, family, &self.node.name);
        let external_ips: Vec<IpAddr> = self.of_family(&svc.external_ips).collect();
        let lb_ips: Vec<IpAddr> = self.of_family(&svc.load_balancer_ips).collect();
        let node_port = port.node_port.filter(|_| !self.node_port_ips.is_empty());
        let policy = Policy::of(svc, port, family);
        let selection = endpoints::select(&eps, policy, &self.node.name, self.node.zone.as_deref());
        let mut entry = |kind: SetKind, e: SetEntry| plan.entries.push((family, kind, e));

        // Hairpin: every local endpoint, whatever its readiness (kube-proxy iterates them all).
        for e in eps.iter().filter(|e| e.local) {
            entry(
                SetKind::LoopBack,
                SetEntry::IpPortIp(e.addr, proto, e.port, e.addr),
            );
        }
        entry(
            SetKind::ClusterIp,
            SetEntry::IpPort(self.cluster_ip, proto, port.port),
        );
        for ip in &external_ips {
            let kind = if svc.external_policy_local {
                SetKind::ExternalIpLocal
            } else {
                SetKind::ExternalIp
            };
            entry(kind, SetEntry::IpPort(*ip, proto, port.port));
        }
        for ip in &lb_ips {
            let e = SetEntry::IpPort(*ip, proto, port.port);
            entry(SetKind::LoadBalancer, e.clone());
            if svc.external_policy_local {
                entry(SetKind::LoadBalancerLocal, e.clone());
            }
            let ranges: Vec<_> = svc
                .source_ranges
                .iter()
                .filter(|r| IpFamily::of(&r.addr()) == family)
                .collect();
            if !ranges.is_empty() {
                entry(SetKind::LoadBalancerFw, e);
                for r in &ranges {
                    entry(
                        SetKind::LoadBalancerSourceCidr,
                        SetEntry::IpPortNet(*ip, proto, port.port, **r),
                    );
                }
                let node_ip = self.node.primary_ip(family);
                if node_ip.is_some_and(|n| ranges.iter().any(|r| r.contains(&n))) {
                    entry(
                        SetKind::LoadBalancerSourceIp,
                        SetEntry::IpPortIp(*ip, proto, port.port, *ip),
                    );
                } else {
                    plan.out_filter.push(OutFilterDrop {
                        addr: *ip,
                        protocol: proto,
                        port: port.port,
                    });
                }
            }
        }
        if let Some(np) = node_port {
            let entries: Vec<SetEntry> = match proto {
                model::Protocol::Sctp => self
                    .node_port_ips
                    .iter()
                    .map(|ip| SetEntry::IpPort(*ip, proto, np))
                    .collect(),
                _ => vec![SetEntry::Port(np)],
            };
            for local in [false, true] {
                if local && !svc.external_policy_local {
                    continue;
                }
                for e in &entries {
                    plan.entries
                        .push((family, SetKind::node_port(proto, local), e.clone()));
                }
            }
        }
        if let Some(hc) = svc.health_check_node_port {
            plan.entries
                .push((family, SetKind::HealthCheckNodePort, SetEntry::Port(hc)));
        }

        self.virtual_servers(port, node_port, &external_ips, &lb_ips, &selection, plan);
        (eps, policy)
    }

    fn virtual_servers(
        &self,
        port: &ServicePort,
        node_port: Option<u16>,
        external_ips: &[IpAddr],
        lb_ips: &[IpAddr],
        selection: &Selection,
        plan: &mut ServicePlan,
    ) {
        let bind = |plan: &mut ServicePlan, ip: IpAddr| {
            plan.addresses.push(ip);
            plan.entries
                .push((self.family, SetKind::IpvsIps, SetEntry::Ip(ip)));
        };
        plan.virtual_servers.push(self.virtual_server(
            port,
            self.cluster_ip,
            port.port,
            &selection.internal,
        ));
        bind(plan, self.cluster_ip);
        for ip in external_ips.iter().chain(lb_ips) {
            plan.virtual_servers.push(self.virtual_server(
                port,
                *ip,
                port.port,
                &selection.external,
            ));
            // An address already on another interface is not bound again (#114815).
            if !self.node.addresses.contains(ip) {
                bind(plan, *ip);
            }
        }
        if let Some(np) = node_port {
            for ip in &self.node_port_ips {
                plan.virtual_servers
                    .push(self.virtual_server(port, *ip, np, &selection.external));
            }
        }
    }

    fn virtual_server(
        &self,
        port: &ServicePort,
        addr: IpAddr,
        vport: u16,
        real_servers: &[(IpAddr, u16)],
    ) -> VirtualServer {
        let persistence = match self.svc.session_affinity {
            SessionAffinity::None => None,
            SessionAffinity::ClientIp { timeout } => Some(Persistence {
                timeout,
                netmask: match self.family {
                    IpFamily::V4 => 32,
                    IpFamily::V6 => 128,
                },
            }),
        };
        let scheduler = self.svc.scheduler.unwrap_or(self.config.scheduler);
        VirtualServer {
            key: VsKey {
                protocol: port.protocol,
                addr,
                port: vport,
            },
            scheduler,
            sched_flags: self
                .svc
                .sched_flags
                .unwrap_or_else(|| crate::ipvs::default_sched_flags(scheduler)),
            persistence,
            real_servers: real_servers
                .iter()
                .map(|(a, p)| RealServer::masqueraded(*a, *p))
                .collect(),
            service: ServicePortName {
                service: self.svc.id.clone(),
                port: port.name.clone(),
            },
            drain_timeout: self.svc.drain_timeout,
        }
    }
}

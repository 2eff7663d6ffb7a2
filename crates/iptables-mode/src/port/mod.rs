//! The rules of one Service port, as kube-proxy's iptables `syncProxyRules` writes them in
//! its loop over Service ports (pkg/proxy/iptables/proxier.go), in the same order.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use desired::endpoints::{self, Policy, PortEndpoint};
use ipnet::IpNet;
use iptables::{ChainName, Rule};
use model::{Service, ServicePort};

use crate::names::{PortChain, ServicePortName, endpoint};
use crate::part::{Context, ServicePart, Shared};
use iptables::Args;

mod own_chains;

/// One Service port in one family, with the Service's addresses of that family.
pub(crate) struct PortInput<'a> {
    /// The Service.
    pub(crate) svc: &'a Service,
    /// The port.
    pub(crate) port: &'a ServicePort,
    /// The cluster IP of the family.
    pub(crate) cluster_ip: IpAddr,
    /// External IPs of the family.
    pub(crate) external_ips: &'a [IpAddr],
    /// Load balancer IPs of the family.
    pub(crate) lb_ips: &'a [IpAddr],
    /// Source ranges of the family.
    pub(crate) source_ranges: &'a [IpNet],
}

/// An endpoint some traffic may reach, with the name of its chain.
struct Ep {
    /// `ip:port` (`[ip]:port` for IPv6), as kube-proxy prints and sorts endpoints.
    text: String,
    /// The address alone.
    ip: String,
    chain: ChainName,
}

/// `REJECT` or `DROP` with its comment, for traffic that has nowhere to go.
struct Refusal {
    target: &'static str,
    comment: String,
}

/// The port's rules, appended to `part`.
pub(crate) fn port_rules(
    input: &PortInput<'_>,
    eps: &[PortEndpoint<'_>],
    ctx: &Context<'_>,
    part: &mut ServicePart,
) -> Result<(), iptables::Error> {
    PortWriter::new(input, eps, ctx).write(part)
}

struct PortWriter<'a> {
    input: &'a PortInput<'a>,
    ctx: &'a Context<'a>,
    name: ServicePortName,
    policy: Policy,
    /// Every endpoint some traffic may reach, in kube-proxy's order (by text).
    reachable: Vec<Ep>,
    /// The endpoints of `Cluster` policy, as indexes into `reachable`.
    cluster: Vec<usize>,
    /// The endpoints of `Local` policy, as indexes into `reachable`.
    local: Vec<usize>,
    has_endpoints: bool,
}

impl<'a> PortWriter<'a> {
    fn new(input: &'a PortInput<'a>, eps: &[PortEndpoint<'_>], ctx: &'a Context<'a>) -> Self {
        let name = ServicePortName::new(&input.svc.id, input.port);
        let policy = Policy {
            internal_local: input.svc.internal_policy_local,
            external_local: input.svc.external_policy_local,
            externally_accessible: input.port.node_port.is_some()
                || !input.external_ips.is_empty()
                || !input.lb_ips.is_empty(),
        };
        let categories =
            endpoints::categorize(eps, policy, &ctx.node.name, ctx.node.zone.as_deref());
        // kube-proxy's endpoints map is sorted by the endpoints' text (`byEndpoint`).
        let mut reachable: Vec<(SocketAddr, Ep)> = categories
            .all_reachable()
            .into_iter()
            .map(|e| {
                let addr = endpoint(e.addr, e.port);
                let ep = Ep {
                    text: addr.to_string(),
                    ip: e.addr.to_string(),
                    chain: name.endpoint_chain(addr),
                };
                (addr, ep)
            })
            .collect();
        reachable.sort_by(|a, b| a.1.text.cmp(&b.1.text));
        let position: HashMap<SocketAddr, usize> = reachable
            .iter()
            .enumerate()
            .map(|(i, (addr, _))| (*addr, i))
            .collect();
        let indexes = |list: &[&PortEndpoint<'_>]| -> Vec<usize> {
            let mut found: Vec<usize> = list
                .iter()
                .filter_map(|e| position.get(&endpoint(e.addr, e.port)).copied())
                .collect();
            found.sort_unstable();
            found
        };
        let cluster = indexes(&categories.cluster);
        let local = indexes(&categories.local);
        PortWriter {
            input,
            ctx,
            reachable: reachable.into_iter().map(|(_, ep)| ep).collect(),
            cluster,
            local,
            name,
            policy,
            has_endpoints: categories.has_any,
        }
    }

    fn write(&self, part: &mut ServicePart) -> Result<(), iptables::Error> {
        let routing = self.routing();
        self.shared_rules(&routing, &mut part.shared)?;
        self.own_chains(&routing, &mut part.chains)
    }

    /// kube-proxy's choice of chains for the port's traffic.
    fn routing(&self) -> Routing {
        let (name, policy) = (&self.name, self.policy);
        let no_local = || Refusal {
            target: "DROP",
            comment: format!("{name} has no local endpoints"),
        };
        let no_endpoints = || Refusal {
            target: "REJECT",
            comment: format!("{name} has no endpoints"),
        };
        let refusal = |local_policy: bool| {
            if !self.has_endpoints {
                Some(no_endpoints())
            } else if local_policy && self.local.is_empty() {
                Some(no_local())
            } else {
                None
            }
        };
        let uses_fw_chain = self.has_endpoints
            && !self.input.lb_ips.is_empty()
            && !self.input.source_ranges.is_empty();
        Routing {
            cluster_chain: name.chain(PortChain::Cluster),
            local_chain: name.chain(PortChain::Local),
            external_chain: name.chain(PortChain::External),
            fw_chain: name.chain(PortChain::Firewall),
            uses_cluster_chain: !self.cluster.is_empty() && policy.uses_cluster_endpoints(),
            uses_local_chain: !self.local.is_empty() && policy.uses_local_endpoints(),
            uses_external_chain: self.has_endpoints && policy.externally_accessible,
            uses_fw_chain,
            internal_refusal: refusal(policy.internal_local),
            external_refusal: refusal(policy.external_local),
            internal_local: policy.internal_local,
            external_local: policy.external_local,
        }
    }

    /// `-m comment --comment COMMENT -m PROTO -p PROTO -d IP --dport PORT`.
    fn to_vip(&self, comment: &str, ip: &IpAddr) -> Args {
        Args::new()
            .comment(comment)
            .protocol(self.input.port.protocol.as_str())
            .words(&[
                "-d",
                &ip.to_string(),
                "--dport",
                &self.input.port.port.to_string(),
            ])
    }

    /// The port's rules in the chains every Service shares.
    fn shared_rules(
        &self,
        r: &Routing,
        out: &mut Vec<(Shared, Rule)>,
    ) -> Result<(), iptables::Error> {
        let (input, name) = (self.input, &self.name);
        let mut shared = |chain: Shared, rule: Rule| out.push((chain, rule));
        // The cluster IP.
        match &r.internal_refusal {
            None => shared(
                Shared::NatServices,
                self.to_vip(&format!("{name} cluster IP"), &input.cluster_ip)
                    .jump_to(r.internal_chain())?,
            ),
            Some(no) => shared(
                Shared::FilterServices,
                self.to_vip(&no.comment, &input.cluster_ip)
                    .jump(no.target)?,
            ),
        }
        // External IPs.
        for ip in input.external_ips {
            if self.has_endpoints {
                shared(
                    Shared::NatServices,
                    self.to_vip(&format!("{name} external IP"), ip)
                        .jump_to(&r.external_chain)?,
                );
            }
            if let Some(no) = &r.external_refusal {
                shared(
                    Shared::FilterExternalServices,
                    self.to_vip(&no.comment, ip).jump(no.target)?,
                );
            }
        }
        // Load balancer IPs.
        for ip in input.lb_ips {
            if self.has_endpoints {
                shared(
                    Shared::NatServices,
                    self.to_vip(&format!("{name} loadbalancer IP"), ip)
                        .jump_to(r.lb_chain())?,
                );
            }
            if r.uses_fw_chain {
                let comment = format!("{name} traffic not accepted by {}", r.fw_chain);
                shared(
                    Shared::FilterProxyFirewall,
                    self.to_vip(&comment, ip).jump("DROP")?,
                );
            }
        }
        if let Some(no) = &r.external_refusal {
            for ip in input.lb_ips {
                shared(
                    Shared::FilterExternalServices,
                    self.to_vip(&no.comment, ip).jump(no.target)?,
                );
            }
        }
        // The node port.
        if let Some(node_port) = input.port.node_port {
            let node_port = node_port.to_string();
            let proto = input.port.protocol;
            if self.has_endpoints {
                shared(
                    Shared::NatNodePorts,
                    Args::new()
                        .comment(name.as_str())
                        .protocol(proto.as_str())
                        .words(&["--dport", &node_port])
                        .jump_to(&r.external_chain)?,
                );
            }
            if let Some(no) = &r.external_refusal {
                shared(
                    Shared::FilterExternalServices,
                    Args::new()
                        .comment(&no.comment)
                        .words(&["-m", "addrtype", "--dst-type", "LOCAL"])
                        .protocol(proto.as_str())
                        .words(&["--dport", &node_port])
                        .jump(no.target)?,
                );
            }
        }
        // The health check node port, accepted whether or not there are local endpoints.
        if let Some(hc) = input.svc.health_check_node_port {
            shared(
                Shared::FilterNodePorts,
                Args::new()
                    .comment(&format!("{name} health check node port"))
                    .protocol(model::Protocol::Tcp.as_str())
                    .words(&["--dport", &hc.to_string()])
                    .jump("ACCEPT")?,
            );
        }
        Ok(())
    }
}

/// Where a port's traffic goes: kube-proxy's chain names and choices.
struct Routing {
    cluster_chain: ChainName,
    local_chain: ChainName,
    external_chain: ChainName,
    fw_chain: ChainName,
    uses_cluster_chain: bool,
    uses_local_chain: bool,
    uses_external_chain: bool,
    uses_fw_chain: bool,
    /// Cluster IP traffic has nowhere to go.
    internal_refusal: Option<Refusal>,
    /// External traffic has nowhere to go.
    external_refusal: Option<Refusal>,
    internal_local: bool,
    external_local: bool,
}

impl Routing {
    /// Where cluster IP traffic goes.
    fn internal_chain(&self) -> &ChainName {
        if self.internal_local {
            &self.local_chain
        } else {
            &self.cluster_chain
        }
    }

    /// Where external traffic goes after `KUBE-EXT-`.
    fn external_policy_chain(&self) -> &ChainName {
        if self.external_local {
            &self.local_chain
        } else {
            &self.cluster_chain
        }
    }

    /// Where load balancer IP traffic goes.
    fn lb_chain(&self) -> &ChainName {
        if self.uses_fw_chain {
            &self.fw_chain
        } else {
            &self.external_chain
        }
    }
}

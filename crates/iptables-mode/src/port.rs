//! The rules of one Service port, as kube-proxy's iptables `syncProxyRules` writes them in
//! its loop over Service ports (pkg/proxy/iptables/proxier.go), in the same order.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use desired::endpoints::{self, Policy, PortEndpoint};
use ipnet::IpNet;
use iptables::{Chain, ChainName, Rule};
use model::{Service, ServicePort, SessionAffinity};

use crate::args::Args;
use crate::chains::MARK_MASQ;
use crate::names::{PortChain, ServicePortName, endpoint};
use crate::service::{Context, ServicePart, Shared};

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
        let (input, name, policy) = (self.input, &self.name, self.policy);
        let cluster_chain = name.chain(PortChain::Cluster);
        let local_chain = name.chain(PortChain::Local);
        let external_chain = name.chain(PortChain::External);
        let fw_chain = name.chain(PortChain::Firewall);
        let uses_cluster_chain = !self.cluster.is_empty() && policy.uses_cluster_endpoints();
        let uses_local_chain = !self.local.is_empty() && policy.uses_local_endpoints();

        let no_local = || Refusal {
            target: "DROP",
            comment: format!("{name} has no local endpoints"),
        };
        let (internal_chain, internal_refusal) = if policy.internal_local {
            let refusal = (self.local.is_empty() || !self.has_endpoints).then(no_local);
            (&local_chain, refusal)
        } else {
            (&cluster_chain, None)
        };
        let (external_policy_chain, external_refusal) = if policy.external_local {
            let refusal = (self.local.is_empty() || !self.has_endpoints).then(no_local);
            (&local_chain, refusal)
        } else {
            (&cluster_chain, None)
        };
        let no_endpoints = || Refusal {
            target: "REJECT",
            comment: format!("{name} has no endpoints"),
        };
        let (internal_refusal, external_refusal) = if self.has_endpoints {
            (internal_refusal, external_refusal)
        } else {
            (Some(no_endpoints()), Some(no_endpoints()))
        };
        let uses_external_chain = self.has_endpoints && policy.externally_accessible;
        let uses_fw_chain =
            self.has_endpoints && !input.lb_ips.is_empty() && !input.source_ranges.is_empty();
        let lb_chain = if uses_fw_chain {
            &fw_chain
        } else {
            &external_chain
        };

        let proto = input.port.protocol;
        let port = input.port.port.to_string();
        let to_vip = |comment: &str, ip: &IpAddr| {
            Args::new().comment(comment).protocol(proto).words(&[
                "-d",
                &ip.to_string(),
                "--dport",
                &port,
            ])
        };
        let mut shared = |chain: Shared, rule: Rule| part.shared.push((chain, rule));

        // The cluster IP.
        let cluster_ip = &input.cluster_ip;
        let cluster_comment = format!("{name} cluster IP");
        match &internal_refusal {
            None => shared(
                Shared::NatServices,
                to_vip(&cluster_comment, cluster_ip).jump_to(internal_chain)?,
            ),
            Some(r) => shared(
                Shared::FilterServices,
                to_vip(&r.comment, cluster_ip).jump(r.target)?,
            ),
        }
        // External IPs.
        for ip in input.external_ips {
            if self.has_endpoints {
                shared(
                    Shared::NatServices,
                    to_vip(&format!("{name} external IP"), ip).jump_to(&external_chain)?,
                );
            }
            if let Some(r) = &external_refusal {
                shared(
                    Shared::FilterExternalServices,
                    to_vip(&r.comment, ip).jump(r.target)?,
                );
            }
        }
        // Load balancer IPs.
        for ip in input.lb_ips {
            if self.has_endpoints {
                shared(
                    Shared::NatServices,
                    to_vip(&format!("{name} loadbalancer IP"), ip).jump_to(lb_chain)?,
                );
            }
            if uses_fw_chain {
                let comment = format!("{name} traffic not accepted by {fw_chain}");
                shared(
                    Shared::FilterProxyFirewall,
                    to_vip(&comment, ip).jump("DROP")?,
                );
            }
        }
        if let Some(r) = &external_refusal {
            for ip in input.lb_ips {
                shared(
                    Shared::FilterExternalServices,
                    to_vip(&r.comment, ip).jump(r.target)?,
                );
            }
        }
        // The node port.
        if let Some(node_port) = input.port.node_port {
            let node_port = node_port.to_string();
            if self.has_endpoints {
                shared(
                    Shared::NatNodePorts,
                    Args::new()
                        .comment(name.as_str())
                        .protocol(proto)
                        .words(&["--dport", &node_port])
                        .jump_to(&external_chain)?,
                );
            }
            if let Some(r) = &external_refusal {
                shared(
                    Shared::FilterExternalServices,
                    Args::new()
                        .comment(&r.comment)
                        .words(&["-m", "addrtype", "--dst-type", "LOCAL"])
                        .protocol(proto)
                        .words(&["--dport", &node_port])
                        .jump(r.target)?,
                );
            }
        }
        // The health check node port, accepted whether or not there are local endpoints.
        if let Some(hc) = input.svc.health_check_node_port {
            shared(
                Shared::FilterNodePorts,
                Args::new()
                    .comment(&format!("{name} health check node port"))
                    .protocol(model::Protocol::Tcp)
                    .words(&["--dport", &hc.to_string()])
                    .jump("ACCEPT")?,
            );
        }

        // The Service's own chains.
        let mut internal_rules = Vec::new();
        if internal_refusal.is_none() {
            let config = self.ctx.config;
            let not_local = config.local_detector.if_not_local(self.ctx.family);
            if config.masquerade_all || not_local.is_some() {
                let not_local = not_local.filter(|_| !config.masquerade_all);
                internal_rules.push(
                    to_vip(&cluster_comment, cluster_ip)
                        .matches(not_local.as_deref())
                        .jump(MARK_MASQ)?,
                );
            }
        }
        if uses_external_chain {
            let rules = self.external_rules(
                &cluster_chain,
                external_policy_chain,
                external_refusal.is_none(),
            )?;
            part.chains.push(Chain {
                name: external_chain.clone(),
                rules,
            });
        }
        if uses_fw_chain {
            part.chains.push(Chain {
                name: fw_chain.clone(),
                rules: self.firewall_rules(&external_chain)?,
            });
        }
        for (uses, chain, eps) in [
            (uses_cluster_chain, &cluster_chain, &self.cluster),
            (uses_local_chain, &local_chain, &self.local),
        ] {
            if !uses {
                continue;
            }
            let mut rules = if chain == internal_chain {
                std::mem::take(&mut internal_rules)
            } else {
                Vec::new()
            };
            let eps: Vec<&Ep> = eps.iter().map(|&i| &self.reachable[i]).collect();
            self.dispatch_rules(&eps, &mut rules)?;
            part.chains.push(Chain {
                name: chain.clone(),
                rules,
            });
        }
        for ep in &self.reachable {
            part.chains.push(Chain {
                name: ep.chain.clone(),
                rules: self.endpoint_rules(ep)?,
            });
        }
        Ok(())
    }

    /// `KUBE-EXT-`: masquerade (Cluster policy) or short-circuit pod and node traffic
    /// (Local policy), then on to the policy chain when it has endpoints.
    fn external_rules(
        &self,
        cluster_chain: &ChainName,
        policy_chain: &ChainName,
        has_external_endpoints: bool,
    ) -> Result<Vec<Rule>, iptables::Error> {
        let name = &self.name;
        let mut rules = Vec::new();
        if !self.policy.external_local {
            rules.push(
                Args::new()
                    .comment(&format!(
                        "masquerade traffic for {name} external destinations"
                    ))
                    .jump(MARK_MASQ)?,
            );
        } else {
            let local = self.ctx.config.local_detector.if_local(self.ctx.family);
            if local.is_some() {
                rules.push(
                    Args::new()
                        .comment(&format!("pod traffic for {name} external destinations"))
                        .matches(local.as_deref())
                        .jump_to(cluster_chain)?,
                );
            }
            let src_local = ["-m", "addrtype", "--src-type", "LOCAL"];
            rules.push(
                Args::new()
                    .comment(&format!(
                        "masquerade LOCAL traffic for {name} external destinations"
                    ))
                    .words(&src_local)
                    .jump(MARK_MASQ)?,
            );
            rules.push(
                Args::new()
                    .comment(&format!(
                        "route LOCAL traffic for {name} external destinations"
                    ))
                    .words(&src_local)
                    .jump_to(cluster_chain)?,
            );
        }
        if has_external_endpoints {
            rules.push(Args::new().jump_to(policy_chain)?);
        }
        Ok(rules)
    }

    /// `KUBE-FW-`: sources in `loadBalancerSourceRanges` go on to `KUBE-EXT-`; the rest
    /// falls through to `KUBE-PROXY-FIREWALL`'s DROP.
    fn firewall_rules(&self, external_chain: &ChainName) -> Result<Vec<Rule>, iptables::Error> {
        let name = &self.name;
        let comment = format!("{name} loadbalancer IP");
        let from = |source: String| {
            Args::new()
                .comment(&comment)
                .words(&["-s", &source])
                .jump_to(external_chain)
        };
        let mut rules = Vec::new();
        let node_ip = self.ctx.node.primary_ip(self.ctx.family);
        let mut allow_from_node = false;
        for range in self.input.source_ranges {
            rules.push(from(range.to_string())?);
            allow_from_node |= node_ip.is_some_and(|ip| range.contains(&ip));
        }
        // A VIP-like load balancer's IP is often local: the node's own requests to it come
        // from the VIP itself.
        if allow_from_node {
            for ip in self.input.lb_ips {
                rules.push(from(ip.to_string())?);
            }
        }
        rules.push(
            Args::new()
                .comment(&format!(
                    "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"
                ))
                .rule()?,
        );
        Ok(rules)
    }

    /// `KUBE-SVC-`/`KUBE-SVL-`: session affinity first, then the random split: endpoint `i`
    /// of `n` with probability `1/(n-i)`, the last one unconditionally.
    fn dispatch_rules(&self, eps: &[&Ep], rules: &mut Vec<Rule>) -> Result<(), iptables::Error> {
        let omit = self.ctx.large_cluster;
        let comment = |ep: &Ep| format!("{} -> {}", self.name, ep.text);
        if let SessionAffinity::ClientIp { timeout } = self.input.svc.session_affinity {
            let seconds = timeout.to_string();
            for ep in eps {
                rules.push(
                    Args::new()
                        .comment_unless(omit, &comment(ep))
                        .words(&["-m", "recent", "--name", ep.chain.as_str()])
                        .words(&["--rcheck", "--seconds", &seconds, "--reap"])
                        .jump_to(&ep.chain)?,
                );
            }
        }
        let n = eps.len();
        for (i, ep) in eps.iter().enumerate() {
            let mut args = Args::new().comment_unless(omit, &comment(ep));
            if i + 1 < n {
                args = args.words(&[
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &probability(n - i),
                ]);
            }
            rules.push(args.jump_to(&ep.chain)?);
        }
        Ok(())
    }

    /// `KUBE-SEP-`: hairpin masquerade, then DNAT (recording the client for affinity).
    fn endpoint_rules(&self, ep: &Ep) -> Result<Vec<Rule>, iptables::Error> {
        let head = || Args::new().comment_unless(self.ctx.large_cluster, self.name.as_str());
        let mut dnat = head();
        if matches!(
            self.input.svc.session_affinity,
            SessionAffinity::ClientIp { .. }
        ) {
            dnat = dnat.words(&["-m", "recent", "--name", ep.chain.as_str(), "--set"]);
        }
        Ok(vec![
            head().words(&["-s", &ep.ip]).jump(MARK_MASQ)?,
            dnat.protocol(self.input.port.protocol)
                .words(&["-j", "DNAT", "--to-destination", &ep.text])
                .rule()?,
        ])
    }
}

/// kube-proxy's `computeProbability`: `1/n` printed with `%0.10f`.
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::probability;

    #[test]
    fn probabilities_print_like_go() {
        assert_eq!(probability(2), "0.5000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(6), "0.1666666667");
        assert_eq!(probability(1000), "0.0010000000");
    }
}

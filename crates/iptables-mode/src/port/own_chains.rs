//! A Service port's own chains: `KUBE-EXT-`, `KUBE-FW-`, `KUBE-SVC-`, `KUBE-SVL-` and one
//! `KUBE-SEP-` per endpoint.

use iptables::{Chain, ChainName, Rule};
use model::SessionAffinity;

use super::{Ep, PortWriter, Routing};
use crate::chains::MARK_MASQ;
use iptables::Args;

impl PortWriter<'_> {
    /// The port's own chains, complete, in kube-proxy's order.
    pub(super) fn own_chains(
        &self,
        r: &Routing,
        out: &mut Vec<Chain>,
    ) -> Result<(), iptables::Error> {
        let mut internal_rules = Vec::new();
        if r.internal_refusal.is_none() {
            let config = self.ctx.config;
            let not_local = config.local_detector.if_not_local(self.ctx.family);
            if config.masquerade_all || not_local.is_some() {
                let not_local = not_local.filter(|_| !config.masquerade_all);
                let comment = format!("{} cluster IP", self.name);
                internal_rules.push(
                    self.to_vip(&comment, &self.input.cluster_ip)
                        .words(not_local.as_deref().unwrap_or_default())
                        .jump(MARK_MASQ)?,
                );
            }
        }
        if r.uses_external_chain {
            out.push(Chain {
                name: r.external_chain.clone(),
                rules: self.external_rules(r)?,
            });
        }
        if r.uses_fw_chain {
            out.push(Chain {
                name: r.fw_chain.clone(),
                rules: self.firewall_rules(&r.external_chain)?,
            });
        }
        for (uses, chain, eps) in [
            (r.uses_cluster_chain, &r.cluster_chain, &self.cluster),
            (r.uses_local_chain, &r.local_chain, &self.local),
        ] {
            if !uses {
                continue;
            }
            let mut rules = if chain == r.internal_chain() {
                std::mem::take(&mut internal_rules)
            } else {
                Vec::new()
            };
            let eps: Vec<&Ep> = eps.iter().map(|&i| &self.reachable[i]).collect();
            self.dispatch_rules(&eps, &mut rules)?;
            out.push(Chain {
                name: chain.clone(),
                rules,
            });
        }
        for ep in &self.reachable {
            out.push(Chain {
                name: ep.chain.clone(),
                rules: self.endpoint_rules(ep)?,
            });
        }
        Ok(())
    }

    /// `KUBE-EXT-`: masquerade (Cluster policy) or short-circuit pod and node traffic
    /// (Local policy), then on to the policy chain when it has endpoints.
    fn external_rules(&self, r: &Routing) -> Result<Vec<Rule>, iptables::Error> {
        let (name, cluster_chain) = (&self.name, &r.cluster_chain);
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
                        .words(local.as_deref().unwrap_or_default())
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
        if r.external_refusal.is_none() {
            rules.push(Args::new().jump_to(r.external_policy_chain())?);
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
            dnat.protocol(self.input.port.protocol.as_str())
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

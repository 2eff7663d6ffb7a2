//! kube-proxy's fixed chains: their names, the rules that do not depend on any Service, the
//! jumps into them from the built-in chains, and which chain names the mode owns.

use desired::{Config, NodeInfo, NodePortAddresses};
use iptables::{Jump, Ownership, Rule, Table};
use model::IpFamily;

use crate::Options;
use crate::names::SERVICE_CHAIN_PREFIXES;
use iptables::Args;

/// `KUBE-SERVICES` (nat and filter).
pub const SERVICES: &str = "KUBE-SERVICES";
/// `KUBE-EXTERNAL-SERVICES` (filter).
pub const EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// `KUBE-NODEPORTS` (nat and filter).
pub const NODE_PORTS: &str = "KUBE-NODEPORTS";
/// `KUBE-POSTROUTING` (nat).
pub const POSTROUTING: &str = "KUBE-POSTROUTING";
/// `KUBE-MARK-MASQ` (nat).
pub const MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// `KUBE-FORWARD` (filter).
pub const FORWARD: &str = "KUBE-FORWARD";
/// `KUBE-PROXY-FIREWALL` (filter).
pub const PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
/// `KUBE-PROXY-CANARY`: kube-proxy's flush detector. Not generated (the writer finds drift
/// by reading the tables), but owned, so that a real kube-proxy's canary is removed.
pub const PROXY_CANARY: &str = "KUBE-PROXY-CANARY";
/// `KUBE-FIREWALL` (filter): kubelet's chain, which kube-proxy duplicates when NodePorts
/// answer on localhost. Never owned: kubelet may want it.
pub const KUBELET_FIREWALL: &str = "KUBE-FIREWALL";

/// The fixed chains of a table, in kube-proxy's declaration order.
pub(crate) fn fixed_chains(table: Table) -> &'static [&'static str] {
    match table {
        Table::Nat => &[SERVICES, NODE_PORTS, POSTROUTING, MARK_MASQ],
        _ => &[
            SERVICES,
            EXTERNAL_SERVICES,
            FORWARD,
            NODE_PORTS,
            PROXY_FIREWALL,
        ],
    }
}

/// The chain names the iptables mode owns in `table` (nat or filter), beyond the chains it
/// wants: an owned chain no longer wanted is deleted with the jumps into it.
pub fn ownership(table: Table) -> Ownership {
    let names = fixed_chains(table).iter().copied().chain([PROXY_CANARY]);
    let own = Ownership::names(names);
    match table {
        Table::Nat => own.with_prefixes(SERVICE_CHAIN_PREFIXES),
        _ => own,
    }
}

/// One of kube-proxy's `iptablesJumpChains`.
struct JumpSpec {
    table: Table,
    from: &'static str,
    to: &'static str,
    comment: &'static str,
    new_only: bool,
}

/// kube-proxy's `iptablesJumpChains`, in the order it ensures them (each prepended).
const JUMPS: [JumpSpec; 12] = {
    const fn j(
        table: Table,
        to: &'static str,
        from: &'static str,
        comment: &'static str,
        new_only: bool,
    ) -> JumpSpec {
        JumpSpec {
            table,
            from,
            to,
            comment,
            new_only,
        }
    }
    const EXT: &str = "kubernetes externally-visible service portals";
    const PORTALS: &str = "kubernetes service portals";
    const LB_FIREWALL: &str = "kubernetes load balancer firewall";
    [
        j(Table::Filter, EXTERNAL_SERVICES, "INPUT", EXT, true),
        j(Table::Filter, EXTERNAL_SERVICES, "FORWARD", EXT, true),
        j(
            Table::Filter,
            NODE_PORTS,
            "INPUT",
            "kubernetes health check service ports",
            false,
        ),
        j(Table::Filter, SERVICES, "FORWARD", PORTALS, true),
        j(Table::Filter, SERVICES, "OUTPUT", PORTALS, true),
        j(
            Table::Filter,
            FORWARD,
            "FORWARD",
            "kubernetes forwarding rules",
            false,
        ),
        j(Table::Filter, PROXY_FIREWALL, "INPUT", LB_FIREWALL, true),
        j(Table::Filter, PROXY_FIREWALL, "OUTPUT", LB_FIREWALL, true),
        j(Table::Filter, PROXY_FIREWALL, "FORWARD", LB_FIREWALL, true),
        j(Table::Nat, SERVICES, "OUTPUT", PORTALS, false),
        j(Table::Nat, SERVICES, "PREROUTING", PORTALS, false),
        j(
            Table::Nat,
            POSTROUTING,
            "POSTROUTING",
            "kubernetes postrouting rules",
            false,
        ),
    ]
};

/// What the fixed part of a family's tables depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed<'a> {
    pub(crate) family: IpFamily,
    pub(crate) config: &'a Config,
    pub(crate) options: &'a Options,
    pub(crate) node: &'a NodeInfo,
}

impl Fixed<'_> {
    /// Whether NodePorts answer on 127.0.0.0/8: IPv4 only, and only when
    /// `nodePortAddresses` admits loopback (kube-proxy's `ContainsIPv4Loopback`).
    pub(crate) fn localhost_node_ports(&self) -> bool {
        let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
        self.family == IpFamily::V4
            && self.options.localhost_node_ports
            && match &self.config.node_port_addresses {
                NodePortAddresses::All => true,
                NodePortAddresses::Select { cidrs, .. } => {
                    cidrs.iter().any(|c| c.contains(&loopback))
                }
            }
    }

    /// The jumps of `table` from built-in chains, in the order they end up in (kube-proxy
    /// prepends each in turn, so the last one ensured comes first).
    pub(crate) fn jumps(&self, table: Table) -> Result<Vec<Jump>, iptables::Error> {
        let mut jumps = Vec::new();
        if table == Table::Filter && self.localhost_node_ports() {
            // kube-proxy's `iptablesKubeletJumpChains`, ensured last: on top.
            for from in ["OUTPUT", "INPUT"] {
                jumps.push(Jump {
                    from: from.parse()?,
                    rule: Args::new().jump(KUBELET_FIREWALL)?,
                });
            }
        }
        for spec in JUMPS.iter().rev().filter(|s| s.table == table) {
            let mut args = Args::new();
            if spec.new_only {
                args = args.words(&["-m", "conntrack", "--ctstate", "NEW"]);
            }
            jumps.push(Jump {
                from: spec.from.parse()?,
                rule: args.comment(spec.comment).jump(spec.to)?,
            });
        }
        Ok(jumps)
    }

    /// The rules of the fixed chain `chain` of `table` that come before any Service's.
    pub(crate) fn head_rules(
        &self,
        table: Table,
        chain: &str,
    ) -> Result<Vec<Rule>, iptables::Error> {
        let mark = self.config.masquerade_mark();
        let masked = format!("{mark}/{mark}");
        let rules = match (table, chain) {
            (Table::Nat, POSTROUTING) => {
                let mut masquerade = Args::new()
                    .comment("kubernetes service traffic requiring SNAT")
                    .words(&["-j", "MASQUERADE"]);
                if self.config.random_fully {
                    masquerade = masquerade.words(&["--random-fully"]);
                }
                vec![
                    Args::new()
                        .words(&["-m", "mark", "!", "--mark", &masked])
                        .jump("RETURN")?,
                    Args::new()
                        .words(&["-j", "MARK", "--xor-mark", &mark])
                        .rule()?,
                    masquerade.rule()?,
                ]
            }
            (Table::Nat, MARK_MASQ) => {
                vec![
                    Args::new()
                        .words(&["-j", "MARK", "--or-mark", &mark])
                        .rule()?,
                ]
            }
            (Table::Filter, FORWARD) => {
                let mut rules = Vec::new();
                if !self.options.conntrack_tcp_be_liberal {
                    rules.push(
                        Args::new()
                            .words(&["-m", "conntrack", "--ctstate", "INVALID"])
                            .jump("DROP")?,
                    );
                }
                rules.push(
                    Args::new()
                        .comment("kubernetes forwarding rules")
                        .words(&["-m", "mark", "--mark", &masked])
                        .jump("ACCEPT")?,
                );
                rules.push(
                    Args::new()
                        .comment("kubernetes forwarding conntrack rule")
                        .words(&["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"])
                        .jump("ACCEPT")?,
                );
                rules
            }
            _ => Vec::new(),
        };
        Ok(rules)
    }

    /// The rules after every Service's in nat `KUBE-SERVICES`: on to `KUBE-NODEPORTS` for
    /// local destinations (`nodePortAddresses` unset) or for each selected node address.
    pub(crate) fn node_ports_tail(&self) -> Result<Vec<Rule>, iptables::Error> {
        const COMMENT: &str =
            "kubernetes service nodeports; NOTE: this must be the last rule in this chain";
        match &self.config.node_port_addresses {
            NodePortAddresses::All => {
                let mut args =
                    Args::new()
                        .comment(COMMENT)
                        .words(&["-m", "addrtype", "--dst-type", "LOCAL"]);
                if self.family == IpFamily::V6 {
                    args = args.words(&["!", "-d", "::1/128"]);
                } else if !self.localhost_node_ports() {
                    args = args.words(&["!", "-d", "127.0.0.0/8"]);
                }
                Ok(vec![args.jump(NODE_PORTS)?])
            }
            which @ NodePortAddresses::Select { .. } => self
                .node
                .node_port_ips(self.family, which)
                .into_iter()
                .map(|ip| {
                    Args::new()
                        .comment(COMMENT)
                        .words(&["-d", &ip.to_string()])
                        .jump(NODE_PORTS)
                })
                .collect(),
        }
    }

    /// kube-proxy's copy of kubelet's `KUBE-FIREWALL` rule, when NodePorts answer on
    /// localhost (`route_localnet` opens 127.0.0.0/8 to the network otherwise).
    pub(crate) fn kubelet_firewall(&self) -> Result<Option<Vec<Rule>>, iptables::Error> {
        if !self.localhost_node_ports() {
            return Ok(None);
        }
        Ok(Some(vec![
            Args::new()
                .comment("block incoming localnet connections")
                .words(&["-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8"])
                .words(&[
                    "-m",
                    "conntrack",
                    "!",
                    "--ctstate",
                    "RELATED,ESTABLISHED,DNAT",
                ])
                .jump("DROP")?,
        ]))
    }
}

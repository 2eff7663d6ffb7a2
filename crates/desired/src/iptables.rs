//! kube-proxy's IPVS-mode iptables rules (`writeIptablesRules`), per family.
//!
//! [`Ruleset::restore_payload`] is exactly what kube-proxy feeds to
//! `iptables-restore --noflush --counters`: every kube chain declared (which flushes it) and
//! rewritten. The jumps from the built-in chains are not part of it: kube-proxy ensures them
//! one by one (`iptables -C`, then `-I … 1`), and so are they listed apart in [`Ruleset::jumps`].

use model::IpFamily;
use serde::Serialize;

use crate::config::Config;
use crate::ipset::SetKind;
use crate::state::DesiredState;

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// `nat`.
    Nat,
    /// `filter`.
    Filter,
}

impl Table {
    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// nat chains, in kube-proxy's declaration order.
pub const NAT_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-POSTROUTING",
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
    "KUBE-MARK-MASQ",
];

/// filter chains, in kube-proxy's declaration order.
pub const FILTER_CHAINS: [&str; 6] = [
    "KUBE-FORWARD",
    "KUBE-NODE-PORT",
    "KUBE-PROXY-FIREWALL",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];

/// A jump from a built-in chain to a kube chain, ensured at position 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jump {
    /// The table.
    pub table: Table,
    /// The built-in chain.
    pub from: &'static str,
    /// The kube chain.
    pub to: &'static str,
    /// The rule's comment.
    pub comment: &'static str,
}

impl Jump {
    /// The rule as `-A`-less arguments (`-m comment --comment "…" -j TO`).
    pub fn rule(&self) -> String {
        format!("-m comment --comment \"{}\" -j {}", self.comment, self.to)
    }
}

/// The jumps, in kube-proxy's `iptablesJumpChain` order.
pub const JUMPS: [Jump; 9] = [
    Jump {
        table: Table::Nat,
        from: "OUTPUT",
        to: "KUBE-SERVICES",
        comment: "kubernetes service portals",
    },
    Jump {
        table: Table::Nat,
        from: "PREROUTING",
        to: "KUBE-SERVICES",
        comment: "kubernetes service portals",
    },
    Jump {
        table: Table::Nat,
        from: "POSTROUTING",
        to: "KUBE-POSTROUTING",
        comment: "kubernetes postrouting rules",
    },
    Jump {
        table: Table::Filter,
        from: "FORWARD",
        to: "KUBE-FORWARD",
        comment: "kubernetes forwarding rules",
    },
    Jump {
        table: Table::Filter,
        from: "INPUT",
        to: "KUBE-NODE-PORT",
        comment: "kubernetes health check rules",
    },
    Jump {
        table: Table::Filter,
        from: "INPUT",
        to: "KUBE-PROXY-FIREWALL",
        comment: "kube-proxy firewall rules",
    },
    Jump {
        table: Table::Filter,
        from: "FORWARD",
        to: "KUBE-PROXY-FIREWALL",
        comment: "kube-proxy firewall rules",
    },
    Jump {
        table: Table::Filter,
        from: "INPUT",
        to: "KUBE-IPVS-FILTER",
        comment: "kubernetes ipvs access filter",
    },
    Jump {
        table: Table::Filter,
        from: "OUTPUT",
        to: "KUBE-IPVS-OUT-FILTER",
        comment: "kubernetes ipvs access filter",
    },
];

/// One set-driven rule of kube-proxy's `ipsetWithIptablesChain`, emitted when the set is
/// not empty.
struct SetRule {
    set: SetKind,
    table: Table,
    from: &'static str,
    to: &'static str,
    matches: &'static str,
    protocol: Option<&'static str>,
}

const SET_RULES: [SetRule; 12] = [
    SetRule {
        set: SetKind::LoopBack,
        table: Table::Nat,
        from: "KUBE-POSTROUTING",
        to: "MASQUERADE",
        matches: "dst,dst,src",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancer,
        table: Table::Nat,
        from: "KUBE-SERVICES",
        to: "KUBE-LOAD-BALANCER",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerLocal,
        table: Table::Nat,
        from: "KUBE-LOAD-BALANCER",
        to: "RETURN",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::NodePortLocalTcp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "RETURN",
        matches: "dst",
        protocol: Some("tcp"),
    },
    SetRule {
        set: SetKind::NodePortTcp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "KUBE-MARK-MASQ",
        matches: "dst",
        protocol: Some("tcp"),
    },
    SetRule {
        set: SetKind::NodePortLocalUdp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "RETURN",
        matches: "dst",
        protocol: Some("udp"),
    },
    SetRule {
        set: SetKind::NodePortUdp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "KUBE-MARK-MASQ",
        matches: "dst",
        protocol: Some("udp"),
    },
    SetRule {
        set: SetKind::NodePortLocalSctp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "RETURN",
        matches: "dst,dst",
        protocol: Some("sctp"),
    },
    SetRule {
        set: SetKind::NodePortSctp,
        table: Table::Nat,
        from: "KUBE-NODE-PORT",
        to: "KUBE-MARK-MASQ",
        matches: "dst,dst",
        protocol: Some("sctp"),
    },
    SetRule {
        set: SetKind::LoadBalancerFw,
        table: Table::Filter,
        from: "KUBE-PROXY-FIREWALL",
        to: "KUBE-SOURCE-RANGES-FIREWALL",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerSourceCidr,
        table: Table::Filter,
        from: "KUBE-SOURCE-RANGES-FIREWALL",
        to: "RETURN",
        matches: "dst,dst,src",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerSourceIp,
        table: Table::Filter,
        from: "KUBE-SOURCE-RANGES-FIREWALL",
        to: "RETURN",
        matches: "dst,dst,src",
        protocol: None,
    },
];

/// The rules of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    /// The jumps from built-in chains (ensured separately).
    pub jumps: Vec<Jump>,
    /// nat rules, `-A CHAIN …` each.
    pub nat: Vec<String>,
    /// filter rules, `-A CHAIN …` each.
    pub filter: Vec<String>,
}

impl Ruleset {
    /// The rules kube-proxy writes for `family` given the state.
    pub fn build(family: IpFamily, state: &DesiredState) -> Ruleset {
        Builder {
            family,
            state,
            config: state.config(),
            nat: Vec::new(),
            filter: Vec::new(),
        }
        .build()
    }

    /// The `iptables-restore --noflush` input.
    pub fn restore_payload(&self) -> String {
        let mut out = String::new();
        for (table, chains, rules) in [
            (Table::Nat, &NAT_CHAINS[..], &self.nat),
            (Table::Filter, &FILTER_CHAINS[..], &self.filter),
        ] {
            out.push_str(&format!("*{}\n", table.as_str()));
            for chain in chains {
                out.push_str(&format!(":{chain} - [0:0]\n"));
            }
            for rule in rules {
                out.push_str(rule);
                out.push('\n');
            }
            out.push_str("COMMIT\n");
        }
        out
    }
}

struct Builder<'a> {
    family: IpFamily,
    state: &'a DesiredState,
    config: &'a Config,
    nat: Vec<String>,
    filter: Vec<String>,
}

impl Builder<'_> {
    fn set(&self, kind: SetKind) -> String {
        kind.name(self.family)
    }

    fn empty(&self, kind: SetKind) -> bool {
        self.state.set_is_empty(self.family, kind)
    }

    /// `-m comment --comment "<set comment>" -m set --match-set <SET> <matches>`.
    /// The comment and set match of `kind`'s rule, the comment as `iptables-save` prints it
    /// (a `'` escaped as `\'`, which `iptables-restore` reads back as `'`).
    fn set_match(&self, kind: SetKind, matches: &str) -> String {
        format!(
            "-m comment --comment \"{}\" -m set --match-set {} {matches}",
            kind.comment().replace('\'', "\\'"),
            self.set(kind)
        )
    }

    /// Every rule is written in the form `iptables-save` prints it (both backends print the
    /// same), which is also how it prints kube-proxy's rules: a start after kube-proxy, or a
    /// restart, then finds the chains right and rewrites nothing. kube-proxy writes
    /// `--or-mark 0x004000`, `--xor-mark 0x004000`, `--mark 0x004000/0x004000` and a bare
    /// `REJECT`; `iptables-save` prints them as below.
    fn build(mut self) -> Ruleset {
        let lo = match self.family {
            IpFamily::V4 => "127.0.0.0/8",
            IpFamily::V6 => "::1/128",
        };
        self.nat.push(format!("-A KUBE-SERVICES -s {lo} -j RETURN"));
        self.set_rules();
        self.cluster_ip_masquerade();
        self.external_ips();
        self.nat
            .push("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT".to_owned());
        self.nat
            .push("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ".to_owned());
        self.filter
            .push("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP".to_owned());
        self.out_filter();
        for kind in [SetKind::ClusterIp, SetKind::LoadBalancer] {
            if !self.empty(kind) {
                self.nat.push(format!(
                    "-A KUBE-SERVICES -m set --match-set {} dst,dst -j ACCEPT",
                    self.set(kind)
                ));
            }
        }
        self.forward_and_filter();
        self.masquerade();
        Ruleset {
            jumps: JUMPS.to_vec(),
            nat: self.nat,
            filter: self.filter,
        }
    }

    /// The rules matching one of kube-proxy's ipsets (`SET_RULES`), for the sets that have
    /// entries.
    fn set_rules(&mut self) {
        for r in &SET_RULES {
            if self.empty(r.set) {
                continue;
            }
            let proto = r.protocol.map(|p| format!(" -p {p}")).unwrap_or_default();
            let rule = format!(
                "-A {}{proto} {} -j {}",
                r.from,
                self.set_match(r.set, r.matches),
                r.to
            );
            match r.table {
                Table::Nat => self.nat.push(rule),
                Table::Filter => self.filter.push(rule),
            }
        }
    }

    /// Cluster IP traffic to masquerade: all of it (`masqueradeAll`), or what the local
    /// traffic detector says comes from outside the cluster, or else node-originated traffic.
    fn cluster_ip_masquerade(&mut self) {
        if !self.empty(SetKind::ClusterIp) {
            let rule = if self.config.masquerade_all {
                format!(
                    "-A KUBE-SERVICES {} -j KUBE-MARK-MASQ",
                    self.set_match(SetKind::ClusterIp, "dst,dst")
                )
            } else if let Some(not_local) = self.config.local_detector.if_not_local(self.family) {
                // The detector's match first, where `iptables-save` prints it (address and
                // interface matches precede `-m` matches), so the rule reads back unchanged;
                // kube-proxy's pkg/proxy/ipvs/README.md shows it so:
                // `-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes
                // service cluster ip + port for masquerade purpose" -m set --match-set
                // KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`.
                let m = self.set_match(SetKind::ClusterIp, "dst,dst");
                format!("-A KUBE-SERVICES {not_local} {m} -j KUBE-MARK-MASQ")
            } else {
                // Node-originated traffic to a VIP gets the VIP itself as source.
                format!(
                    "-A KUBE-SERVICES {} -j KUBE-MARK-MASQ",
                    self.set_match(SetKind::ClusterIp, "src,dst")
                )
            };
            self.nat.push(rule);
        }
    }

    /// External IPs: masqueraded (unless Local), and accepted from outside or locally.
    fn external_ips(&mut self) {
        for (kind, masquerade) in [
            (SetKind::ExternalIp, true),
            (SetKind::ExternalIpLocal, false),
        ] {
            if self.empty(kind) {
                continue;
            }
            let base = format!("-A KUBE-SERVICES {}", self.set_match(kind, "dst,dst"));
            if masquerade {
                self.nat.push(format!("{base} -j KUBE-MARK-MASQ"));
            }
            self.nat.push(format!(
                "{base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"
            ));
            self.nat
                .push(format!("{base} -m addrtype --dst-type LOCAL -j ACCEPT"));
        }
    }

    /// `KUBE-IPVS-OUT-FILTER`: load balancer VIPs closed to the node itself.
    fn out_filter(&mut self) {
        // kube-proxy writes `-s IP -m ipvs --vaddr IP --vproto tcp --vport P`; `iptables-save`
        // prints the source with its prefix length, `--vproto` first and as a number.
        let host = match self.family {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        };
        for d in self.state.out_filter(self.family) {
            self.filter.push(format!(
                "-A KUBE-IPVS-OUT-FILTER -s {ip}/{host} -m ipvs --vproto {} --vaddr {ip} --vport {} -j DROP",
                d.protocol.number(),
                d.port,
                ip = d.addr
            ));
        }
    }

    /// `KUBE-FORWARD`, the health check node port rule and `KUBE-IPVS-FILTER` (which rejects
    /// new connections to `kube-ipvs0` addresses that are not a Service's).
    fn forward_and_filter(&mut self) {
        let mark = self.config.saved_masquerade_mark();
        let reject_with = match self.family {
            IpFamily::V4 => "icmp-port-unreachable",
            IpFamily::V6 => "icmp6-port-unreachable",
        };
        self.filter.push(format!(
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"
        ));
        self.filter.push(
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                .to_owned(),
        );
        self.filter.push(format!(
            "-A KUBE-NODE-PORT {} -j ACCEPT",
            self.set_match(SetKind::HealthCheckNodePort, "dst")
        ));
        for (kind, matches) in [
            (SetKind::LoadBalancer, "dst,dst"),
            (SetKind::ClusterIp, "dst,dst"),
            (SetKind::ExternalIp, "dst,dst"),
            (SetKind::ExternalIpLocal, "dst,dst"),
            (SetKind::HealthCheckNodePort, "dst"),
        ] {
            self.filter.push(format!(
                "-A KUBE-IPVS-FILTER -m set --match-set {} {matches} -j RETURN",
                self.set(kind)
            ));
        }
        self.filter.push(format!(
            "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set {} dst -j REJECT --reject-with {reject_with}",
            self.set(SetKind::IpvsIps)
        ));
    }

    /// `KUBE-POSTROUTING` and `KUBE-MARK-MASQ`: mark, then masquerade what is marked.
    fn masquerade(&mut self) {
        let mark = self.config.saved_masquerade_mark();
        self.nat.push(format!(
            "-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN"
        ));
        self.nat.push(format!(
            "-A KUBE-POSTROUTING -j MARK --set-xmark {mark}/0x0"
        ));
        let random = if self.config.random_fully {
            " --random-fully"
        } else {
            ""
        };
        self.nat.push(format!(
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE{random}"
        ));
        self.nat.push(format!(
            "-A KUBE-MARK-MASQ -j MARK --set-xmark {mark}/{mark}"
        ));
    }
}

//! kube-proxy's IPVS-mode iptables rules (`writeIptablesRules`), per family, as typed rules
//! ([`iptables::Rule`], built with [`iptables::Args`]): the values the writer applies and the
//! dry run prints, spelled once, the way `iptables-save` prints them.
//!
//! [`Ruleset::restore_payload`] is what kube-proxy feeds to
//! `iptables-restore --noflush --counters`: every kube chain declared (which flushes it) and
//! rewritten. The jumps from the built-in chains are not part of it: kube-proxy ensures them
//! one by one (`iptables -C`, then `-I … 1`), and so are they listed apart in
//! [`Ruleset::jumps`].

use std::fmt::{self, Write as _};

use iptables::{Args, Rule};
use model::IpFamily;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

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
    /// Both tables, nat first.
    pub const ALL: [Table; 2] = [Table::Nat, Table::Filter];

    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

impl From<Table> for iptables::Table {
    fn from(table: Table) -> iptables::Table {
        match table {
            Table::Nat => iptables::Table::Nat,
            Table::Filter => iptables::Table::Filter,
        }
    }
}

/// One of kube-proxy's IPVS-mode chains (`iptablesChains`), which belongs to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeChain {
    /// nat `KUBE-SERVICES`.
    Services,
    /// nat `KUBE-POSTROUTING`.
    Postrouting,
    /// nat `KUBE-NODE-PORT`.
    NatNodePort,
    /// nat `KUBE-LOAD-BALANCER`.
    LoadBalancer,
    /// nat `KUBE-MARK-MASQ`.
    MarkMasq,
    /// filter `KUBE-FORWARD`.
    Forward,
    /// filter `KUBE-NODE-PORT`.
    FilterNodePort,
    /// filter `KUBE-PROXY-FIREWALL`.
    ProxyFirewall,
    /// filter `KUBE-SOURCE-RANGES-FIREWALL`.
    SourceRangesFirewall,
    /// filter `KUBE-IPVS-FILTER`.
    IpvsFilter,
    /// filter `KUBE-IPVS-OUT-FILTER`.
    IpvsOutFilter,
}

impl KubeChain {
    /// nat chains, in kube-proxy's declaration order.
    pub const NAT: [KubeChain; 5] = [
        KubeChain::Services,
        KubeChain::Postrouting,
        KubeChain::NatNodePort,
        KubeChain::LoadBalancer,
        KubeChain::MarkMasq,
    ];

    /// filter chains, in kube-proxy's declaration order.
    pub const FILTER: [KubeChain; 6] = [
        KubeChain::Forward,
        KubeChain::FilterNodePort,
        KubeChain::ProxyFirewall,
        KubeChain::SourceRangesFirewall,
        KubeChain::IpvsFilter,
        KubeChain::IpvsOutFilter,
    ];

    /// The chains of `table`, in kube-proxy's declaration order.
    pub fn of(table: Table) -> &'static [KubeChain] {
        match table {
            Table::Nat => &KubeChain::NAT,
            Table::Filter => &KubeChain::FILTER,
        }
    }

    /// The chain's position in [`KubeChain::of`] its table.
    pub fn index(self) -> usize {
        match self {
            KubeChain::Services | KubeChain::Forward => 0,
            KubeChain::Postrouting | KubeChain::FilterNodePort => 1,
            KubeChain::NatNodePort | KubeChain::ProxyFirewall => 2,
            KubeChain::LoadBalancer | KubeChain::SourceRangesFirewall => 3,
            KubeChain::MarkMasq | KubeChain::IpvsFilter => 4,
            KubeChain::IpvsOutFilter => 5,
        }
    }

    /// The chain's table.
    pub fn table(self) -> Table {
        match self {
            KubeChain::Services
            | KubeChain::Postrouting
            | KubeChain::NatNodePort
            | KubeChain::LoadBalancer
            | KubeChain::MarkMasq => Table::Nat,
            _ => Table::Filter,
        }
    }

    /// The chain's name.
    pub fn name(self) -> &'static str {
        match self {
            KubeChain::Services => "KUBE-SERVICES",
            KubeChain::Postrouting => "KUBE-POSTROUTING",
            KubeChain::NatNodePort | KubeChain::FilterNodePort => "KUBE-NODE-PORT",
            KubeChain::LoadBalancer => "KUBE-LOAD-BALANCER",
            KubeChain::MarkMasq => "KUBE-MARK-MASQ",
            KubeChain::Forward => "KUBE-FORWARD",
            KubeChain::ProxyFirewall => "KUBE-PROXY-FIREWALL",
            KubeChain::SourceRangesFirewall => "KUBE-SOURCE-RANGES-FIREWALL",
            KubeChain::IpvsFilter => "KUBE-IPVS-FILTER",
            KubeChain::IpvsOutFilter => "KUBE-IPVS-OUT-FILTER",
        }
    }
}

/// Serialized as its name.
impl Serialize for KubeChain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A jump from a built-in chain to a kube chain, ensured at position 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    /// The built-in chain.
    pub from: &'static str,
    /// The kube chain.
    pub to: KubeChain,
    /// The rule's comment.
    pub comment: &'static str,
}

impl Jump {
    /// The table: the kube chain's.
    pub fn table(&self) -> Table {
        self.to.table()
    }

    /// The rule: `-m comment --comment "…" -j TO`.
    ///
    /// # Errors
    /// None for kube-proxy's jumps; [`iptables::Error::InvalidRule`] for a comment with a line
    /// break.
    pub fn rule(&self) -> Result<Rule, iptables::Error> {
        Args::new().comment(self.comment).jump(self.to.name())
    }
}

/// `{"table", "from", "to", "comment"}`.
impl Serialize for Jump {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Jump", 4)?;
        s.serialize_field("table", &self.table())?;
        s.serialize_field("from", self.from)?;
        s.serialize_field("to", &self.to)?;
        s.serialize_field("comment", self.comment)?;
        s.end()
    }
}

/// The jumps, in kube-proxy's `iptablesJumpChain` order.
pub const JUMPS: [Jump; 9] = [
    Jump {
        from: "OUTPUT",
        to: KubeChain::Services,
        comment: "kubernetes service portals",
    },
    Jump {
        from: "PREROUTING",
        to: KubeChain::Services,
        comment: "kubernetes service portals",
    },
    Jump {
        from: "POSTROUTING",
        to: KubeChain::Postrouting,
        comment: "kubernetes postrouting rules",
    },
    Jump {
        from: "FORWARD",
        to: KubeChain::Forward,
        comment: "kubernetes forwarding rules",
    },
    Jump {
        from: "INPUT",
        to: KubeChain::FilterNodePort,
        comment: "kubernetes health check rules",
    },
    Jump {
        from: "INPUT",
        to: KubeChain::ProxyFirewall,
        comment: "kube-proxy firewall rules",
    },
    Jump {
        from: "FORWARD",
        to: KubeChain::ProxyFirewall,
        comment: "kube-proxy firewall rules",
    },
    Jump {
        from: "INPUT",
        to: KubeChain::IpvsFilter,
        comment: "kubernetes ipvs access filter",
    },
    Jump {
        from: "OUTPUT",
        to: KubeChain::IpvsOutFilter,
        comment: "kubernetes ipvs access filter",
    },
];

/// One rule appended to one of kube-proxy's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The chain.
    pub chain: KubeChain,
    /// The rule.
    pub rule: Rule,
}

/// `-A CHAIN RULE`, the line of `iptables-restore` input and of `iptables-save`.
impl fmt::Display for Appended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-A {} {}", self.chain.name(), self.rule)
    }
}

/// Serialized as its `-A CHAIN RULE` line.
impl Serialize for Appended {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One set-driven rule of kube-proxy's `ipsetWithIptablesChain`, emitted when the set is
/// not empty.
struct SetRule {
    set: SetKind,
    from: KubeChain,
    to: &'static str,
    matches: &'static str,
    protocol: Option<&'static str>,
}

const SET_RULES: [SetRule; 12] = [
    SetRule {
        set: SetKind::LoopBack,
        from: KubeChain::Postrouting,
        to: "MASQUERADE",
        matches: "dst,dst,src",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancer,
        from: KubeChain::Services,
        to: "KUBE-LOAD-BALANCER",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerLocal,
        from: KubeChain::LoadBalancer,
        to: "RETURN",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::NodePortLocalTcp,
        from: KubeChain::NatNodePort,
        to: "RETURN",
        matches: "dst",
        protocol: Some("tcp"),
    },
    SetRule {
        set: SetKind::NodePortTcp,
        from: KubeChain::NatNodePort,
        to: "KUBE-MARK-MASQ",
        matches: "dst",
        protocol: Some("tcp"),
    },
    SetRule {
        set: SetKind::NodePortLocalUdp,
        from: KubeChain::NatNodePort,
        to: "RETURN",
        matches: "dst",
        protocol: Some("udp"),
    },
    SetRule {
        set: SetKind::NodePortUdp,
        from: KubeChain::NatNodePort,
        to: "KUBE-MARK-MASQ",
        matches: "dst",
        protocol: Some("udp"),
    },
    SetRule {
        set: SetKind::NodePortLocalSctp,
        from: KubeChain::NatNodePort,
        to: "RETURN",
        matches: "dst,dst",
        protocol: Some("sctp"),
    },
    SetRule {
        set: SetKind::NodePortSctp,
        from: KubeChain::NatNodePort,
        to: "KUBE-MARK-MASQ",
        matches: "dst,dst",
        protocol: Some("sctp"),
    },
    SetRule {
        set: SetKind::LoadBalancerFw,
        from: KubeChain::ProxyFirewall,
        to: "KUBE-SOURCE-RANGES-FIREWALL",
        matches: "dst,dst",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerSourceCidr,
        from: KubeChain::SourceRangesFirewall,
        to: "RETURN",
        matches: "dst,dst,src",
        protocol: None,
    },
    SetRule {
        set: SetKind::LoadBalancerSourceIp,
        from: KubeChain::SourceRangesFirewall,
        to: "RETURN",
        matches: "dst,dst,src",
        protocol: None,
    },
];

/// The rules of one family: each in the table of its chain, in kube-proxy's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    jumps: Vec<Jump>,
    nat: Vec<Appended>,
    filter: Vec<Appended>,
}

impl Ruleset {
    /// The rules kube-proxy writes for `family` given the state.
    ///
    /// # Errors
    /// [`iptables::Error::InvalidRule`] when a rule cannot be written: a configured
    /// local-traffic detector's interface name with a line break.
    pub fn build(family: IpFamily, state: &DesiredState) -> Result<Ruleset, iptables::Error> {
        Builder {
            family,
            state,
            config: state.config(),
            rules: Ruleset {
                jumps: JUMPS.to_vec(),
                nat: Vec::new(),
                filter: Vec::new(),
            },
        }
        .build()
    }

    /// The jumps from built-in chains (ensured separately).
    pub fn jumps(&self) -> &[Jump] {
        &self.jumps
    }

    /// The rules of `table`'s chains, in the order kube-proxy writes them.
    pub fn rules(&self, table: Table) -> &[Appended] {
        match table {
            Table::Nat => &self.nat,
            Table::Filter => &self.filter,
        }
    }

    /// The rules of both tables by value, nat first (for the writer).
    pub fn into_rules(self) -> [(Table, Vec<Appended>); 2] {
        [(Table::Nat, self.nat), (Table::Filter, self.filter)]
    }

    /// The `iptables-restore --noflush` input.
    pub fn restore_payload(&self) -> String {
        let mut out = String::new();
        for table in Table::ALL {
            let _ = writeln!(out, "*{}", table.as_str());
            for chain in KubeChain::of(table) {
                let _ = writeln!(out, ":{} - [0:0]", chain.name());
            }
            for rule in self.rules(table) {
                let _ = writeln!(out, "{rule}");
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
    rules: Ruleset,
}

impl Builder<'_> {
    fn set(&self, kind: SetKind) -> String {
        kind.name(self.family)
    }

    fn empty(&self, kind: SetKind) -> bool {
        self.state.set_is_empty(self.family, kind)
    }

    /// Appends `rule` to `chain`.
    fn push(&mut self, chain: KubeChain, rule: Result<Rule, iptables::Error>) -> BuildResult {
        let rule = Appended { chain, rule: rule? };
        match chain.table() {
            Table::Nat => self.rules.nat.push(rule),
            Table::Filter => self.rules.filter.push(rule),
        }
        Ok(())
    }

    /// `args` followed by `-m comment --comment "<set comment>" -m set --match-set <SET>
    /// <matches>`: the comment and set match of `kind`'s rule.
    fn commented_set(&self, args: Args, kind: SetKind, matches: &str) -> Args {
        args.comment(kind.comment())
            .set_match(&self.set(kind), matches)
    }

    /// Every rule is written in the form `iptables-save` prints it (both backends print the
    /// same), which is also how it prints kube-proxy's rules: a start after kube-proxy, or a
    /// restart, then finds the chains right and rewrites nothing. kube-proxy writes
    /// `--or-mark 0x004000`, `--xor-mark 0x004000`, `--mark 0x004000/0x004000` and a bare
    /// `REJECT`; `iptables-save` prints them as below.
    fn build(mut self) -> Result<Ruleset, iptables::Error> {
        let lo = match self.family {
            IpFamily::V4 => "127.0.0.0/8",
            IpFamily::V6 => "::1/128",
        };
        self.push(
            KubeChain::Services,
            Args::new().words(&["-s", lo]).jump("RETURN"),
        )?;
        self.set_rules()?;
        self.cluster_ip_masquerade()?;
        self.external_ips()?;
        self.push(
            KubeChain::Services,
            Args::new()
                .words(&["-m", "addrtype", "--dst-type", "LOCAL"])
                .jump(KubeChain::NatNodePort.name()),
        )?;
        self.push(
            KubeChain::LoadBalancer,
            Args::new().jump(KubeChain::MarkMasq.name()),
        )?;
        self.push(KubeChain::SourceRangesFirewall, Args::new().jump("DROP"))?;
        self.out_filter()?;
        for kind in [SetKind::ClusterIp, SetKind::LoadBalancer] {
            if !self.empty(kind) {
                self.push(
                    KubeChain::Services,
                    Args::new()
                        .set_match(&self.set(kind), "dst,dst")
                        .jump("ACCEPT"),
                )?;
            }
        }
        self.forward_and_filter()?;
        self.masquerade()?;
        Ok(self.rules)
    }

    /// The rules matching one of kube-proxy's ipsets (`SET_RULES`), for the sets that have
    /// entries.
    fn set_rules(&mut self) -> BuildResult {
        for r in &SET_RULES {
            if self.empty(r.set) {
                continue;
            }
            let proto = match r.protocol {
                Some(p) => Args::new().words(&["-p", p]),
                None => Args::new(),
            };
            self.push(
                r.from,
                self.commented_set(proto, r.set, r.matches).jump(r.to),
            )?;
        }
        Ok(())
    }

    /// Cluster IP traffic to masquerade: all of it (`masqueradeAll`), or what the local
    /// traffic detector says comes from outside the cluster, or else node-originated traffic.
    fn cluster_ip_masquerade(&mut self) -> BuildResult {
        if self.empty(SetKind::ClusterIp) {
            return Ok(());
        }
        let (not_local, matches) = if self.config.masquerade_all {
            (None, "dst,dst")
        } else if let Some(not_local) = self.config.local_detector.if_not_local(self.family) {
            // The detector's match first, where `iptables-save` prints it (address and
            // interface matches precede `-m` matches), so the rule reads back unchanged;
            // kube-proxy's pkg/proxy/ipvs/README.md shows it so:
            // `-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes
            // service cluster ip + port for masquerade purpose" -m set --match-set
            // KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`.
            (Some(not_local), "dst,dst")
        } else {
            // Node-originated traffic to a VIP gets the VIP itself as source.
            (None, "src,dst")
        };
        let args = Args::new().words(not_local.as_deref().unwrap_or_default());
        self.push(
            KubeChain::Services,
            self.commented_set(args, SetKind::ClusterIp, matches)
                .jump(KubeChain::MarkMasq.name()),
        )
    }

    /// External IPs: masqueraded (unless Local), and accepted from outside or locally.
    fn external_ips(&mut self) -> BuildResult {
        for (kind, masquerade) in [
            (SetKind::ExternalIp, true),
            (SetKind::ExternalIpLocal, false),
        ] {
            if self.empty(kind) {
                continue;
            }
            let base = self.commented_set(Args::new(), kind, "dst,dst");
            if masquerade {
                self.push(
                    KubeChain::Services,
                    base.clone().jump(KubeChain::MarkMasq.name()),
                )?;
            }
            self.push(
                KubeChain::Services,
                base.clone()
                    .words(&["-m", "physdev", "!", "--physdev-is-in"])
                    .words(&["-m", "addrtype", "!", "--src-type", "LOCAL"])
                    .jump("ACCEPT"),
            )?;
            self.push(
                KubeChain::Services,
                base.words(&["-m", "addrtype", "--dst-type", "LOCAL"])
                    .jump("ACCEPT"),
            )?;
        }
        Ok(())
    }

    /// `KUBE-IPVS-OUT-FILTER`: load balancer VIPs closed to the node itself.
    fn out_filter(&mut self) -> BuildResult {
        // kube-proxy writes `-s IP -m ipvs --vaddr IP --vproto tcp --vport P`; `iptables-save`
        // prints the source with its prefix length, `--vproto` first and as a number.
        let host = match self.family {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        };
        for d in self.state.out_filter(self.family) {
            let addr = d.addr.to_string();
            let rule = Args::new()
                .words(&["-s", &format!("{addr}/{host}"), "-m", "ipvs"])
                .words(&["--vproto", &d.protocol.number().to_string()])
                .words(&["--vaddr", &addr, "--vport", &d.port.to_string()])
                .jump("DROP");
            self.push(KubeChain::IpvsOutFilter, rule)?;
        }
        Ok(())
    }

    /// `KUBE-FORWARD`, the health check node port rule and `KUBE-IPVS-FILTER` (which rejects
    /// new connections to `kube-ipvs0` addresses that are not a Service's).
    fn forward_and_filter(&mut self) -> BuildResult {
        let mark = self.config.saved_masquerade_mark();
        let reject_with = match self.family {
            IpFamily::V4 => "icmp-port-unreachable",
            IpFamily::V6 => "icmp6-port-unreachable",
        };
        self.push(
            KubeChain::Forward,
            Args::new()
                .comment("kubernetes forwarding rules")
                .words(&["-m", "mark", "--mark", &format!("{mark}/{mark}")])
                .jump("ACCEPT"),
        )?;
        self.push(
            KubeChain::Forward,
            Args::new()
                .comment("kubernetes forwarding conntrack rule")
                .words(&["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"])
                .jump("ACCEPT"),
        )?;
        self.push(
            KubeChain::FilterNodePort,
            self.commented_set(Args::new(), SetKind::HealthCheckNodePort, "dst")
                .jump("ACCEPT"),
        )?;
        for (kind, matches) in [
            (SetKind::LoadBalancer, "dst,dst"),
            (SetKind::ClusterIp, "dst,dst"),
            (SetKind::ExternalIp, "dst,dst"),
            (SetKind::ExternalIpLocal, "dst,dst"),
            (SetKind::HealthCheckNodePort, "dst"),
        ] {
            self.push(
                KubeChain::IpvsFilter,
                Args::new()
                    .set_match(&self.set(kind), matches)
                    .jump("RETURN"),
            )?;
        }
        self.push(
            KubeChain::IpvsFilter,
            Args::new()
                .words(&["-m", "conntrack", "--ctstate", "NEW"])
                .set_match(&self.set(SetKind::IpvsIps), "dst")
                .words(&["-j", "REJECT", "--reject-with", reject_with])
                .rule(),
        )
    }

    /// `KUBE-POSTROUTING` and `KUBE-MARK-MASQ`: mark, then masquerade what is marked.
    fn masquerade(&mut self) -> BuildResult {
        let mark = self.config.saved_masquerade_mark();
        let masked = format!("{mark}/{mark}");
        self.push(
            KubeChain::Postrouting,
            Args::new()
                .words(&["-m", "mark", "!", "--mark", &masked])
                .jump("RETURN"),
        )?;
        self.push(
            KubeChain::Postrouting,
            Args::new()
                .words(&["-j", "MARK", "--set-xmark", &format!("{mark}/0x0")])
                .rule(),
        )?;
        let random: &[&str] = if self.config.random_fully {
            &["--random-fully"]
        } else {
            &[]
        };
        self.push(
            KubeChain::Postrouting,
            Args::new()
                .comment("kubernetes service traffic requiring SNAT")
                .words(&["-j", "MASQUERADE"])
                .words(random)
                .rule(),
        )?;
        self.push(
            KubeChain::MarkMasq,
            Args::new()
                .words(&["-j", "MARK", "--set-xmark", &masked])
                .rule(),
        )
    }
}

/// What building one rule gives.
type BuildResult = Result<(), iptables::Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_targets_a_chain_of_its_table_and_every_chain_is_declared_once() {
        for table in Table::ALL {
            for (i, chain) in KubeChain::of(table).iter().enumerate() {
                assert_eq!(chain.table(), table, "{}", chain.name());
                assert_eq!(chain.index(), i, "{}", chain.name());
            }
        }
        assert_eq!(
            JUMPS[4].rule().unwrap().text(),
            r#"-m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT"#
        );
        assert_eq!(JUMPS[4].table(), Table::Filter);
    }

    #[test]
    fn a_detector_that_cannot_be_written_is_an_error_naming_the_rule() {
        use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
        let service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
        }))
        .expect("service");
        let mut model = Model::new(ProxyFilter::default(), None);
        model.apply(SourceEvent::Listed(
            Kind::Service,
            vec![Object::Service(Box::new(service))],
        ));
        let config = Config {
            local_detector: crate::LocalDetector::BridgeInterface("cbr0\n-F".into()),
            ..Config::default()
        };
        let state = DesiredState::new(config, crate::NodeInfo::default(), &model);
        let err = Ruleset::build(IpFamily::V4, &state).expect_err("a line break");
        assert!(err.to_string().contains("cbr0"), "{err}");
        let fine = DesiredState::new(Config::default(), crate::NodeInfo::default(), &model);
        let rules = Ruleset::build(IpFamily::V4, &fine).expect("rules");
        assert!(
            rules.rules(Table::Nat).iter().any(|r| r.to_string()
                == "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port \
                    for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ"),
            "{rules:#?}"
        );
    }
}

//! kube-proxy's IPVS-mode iptables rules as the iptables writer's
//! [`DesiredTable`]s: one per table (nat, filter) and family.
//!
//! The chains are exactly the ones kube-proxy declares in IPVS mode
//! ([`desired::iptables::NAT_CHAINS`], [`desired::iptables::FILTER_CHAINS`]),
//! each with all its rules (an empty chain stays declared); the jumps into
//! them from the built-in chains are kept once each. Only those chain names
//! are owned: the writer never touches another chain, not even one named
//! `KUBE-…` by kube-proxy's iptables mode or kubelet.

use desired::DesiredState;
use desired::iptables::{FILTER_CHAINS, NAT_CHAINS, Ruleset, Table as DesiredTableName};
use iptables::{Chain, ChainName, DesiredTable, Error, Family, Jump, Ownership, Rule, Table};
use model::IpFamily;

/// The writer's family for an address family.
pub fn family(family: IpFamily) -> Family {
    match family {
        IpFamily::V4 => Family::V4,
        IpFamily::V6 => Family::V6,
    }
}

/// The tables we write, with kube-proxy's chains of each.
pub const TABLES: [(Table, &[&str]); 2] =
    [(Table::Nat, &NAT_CHAINS), (Table::Filter, &FILTER_CHAINS)];

fn desired_table(table: Table) -> DesiredTableName {
    match table {
        Table::Nat => DesiredTableName::Nat,
        _ => DesiredTableName::Filter,
    }
}

/// What we own in `table`: kube-proxy's IPVS-mode chains of that table.
pub fn ownership(chains: &[&str]) -> Ownership {
    Ownership::names(chains.iter().copied())
}

/// Nothing of ours in any table: applying these deletes our chains and the
/// jumps into them (`--cleanup`).
pub fn nothing() -> Vec<DesiredTable> {
    TABLES
        .iter()
        .map(|(table, chains)| DesiredTable::new(*table, ownership(chains)))
        .collect()
}

/// `-A CHAIN SPEC` split into the chain and the rule.
fn appended(line: &str) -> Result<(ChainName, Rule), Error> {
    let invalid = |why| Error::InvalidRule {
        rule: line.to_owned(),
        why,
    };
    let rest = line
        .strip_prefix("-A ")
        .ok_or_else(|| invalid("does not start with -A"))?;
    let (chain, spec) = rest
        .split_once(' ')
        .ok_or_else(|| invalid("has no rule after the chain"))?;
    Ok((chain.parse()?, Rule::parse(spec)?))
}

/// A mark value or `value/mask` as `iptables-save` prints it: hex without
/// leading zeros (`0x004000` → `0x4000`); `None` when it is not a number.
fn saved_mark(text: &str) -> Option<String> {
    let hex = |t: &str| {
        let digits = t.strip_prefix("0x").unwrap_or(t);
        u32::from_str_radix(digits, 16)
            .ok()
            .map(|v| format!("{v:#x}"))
    };
    match text.split_once('/') {
        Some((v, m)) => Some(format!("{}/{}", hex(v)?, hex(m)?)),
        None => hex(text),
    }
}

/// An address as `iptables-save` prints it: with its prefix length.
fn saved_address(addr: &str, family: IpFamily) -> String {
    match (addr.contains('/'), family) {
        (true, _) => addr.to_owned(),
        (false, IpFamily::V4) => format!("{addr}/32"),
        (false, IpFamily::V6) => format!("{addr}/128"),
    }
}

/// The `-m ipvs` options as libxt_ipvs saves them: `--vproto` as a number,
/// then `--vaddr` (a host address without prefix length, as iptables 1.8.9
/// prints it), then `--vport`.
fn saved_ipvs_options(options: &[(&str, &str)]) -> Vec<String> {
    let value = |name: &str| options.iter().find(|(o, _)| *o == name).map(|(_, v)| *v);
    let mut words = Vec::new();
    if let Some(proto) = value("--vproto") {
        let number = match proto {
            "tcp" => "6",
            "udp" => "17",
            "sctp" => "132",
            other => other,
        };
        words.extend(["--vproto".to_owned(), number.to_owned()]);
    }
    if let Some(addr) = value("--vaddr") {
        words.extend(["--vaddr".to_owned(), addr.to_owned()]);
    }
    for (option, v) in options {
        if !matches!(*option, "--vproto" | "--vaddr") {
            words.extend([(*option).to_owned(), (*v).to_owned()]);
        }
    }
    words
}

/// The rule as `iptables-save` prints it back, for the spellings kube-proxy
/// uses that the kernel prints otherwise: marks in short hex, `--or-mark V`
/// as `--set-xmark V/V`, `--xor-mark V` as `--set-xmark V/0x0`, addresses
/// with their prefix length (not `--vaddr`), `-m ipvs` options in
/// libxt_ipvs's order, and a
/// bare `-j REJECT` with its default `--reject-with`. Rules that are already
/// canonical read back equal, so a restart or a takeover rewrites nothing.
fn canonical(rule: Rule, family: IpFamily) -> Result<Rule, Error> {
    let mut words: Vec<String> = Vec::with_capacity(rule.words().len() + 2);
    let mut iter = rule.words().iter().map(String::as_str).peekable();
    while let Some(word) = iter.next() {
        let next = iter.peek().copied();
        match (word, next) {
            ("--mark" | "--or-mark" | "--xor-mark", Some(v)) if saved_mark(v).is_some() => {
                iter.next();
                let mark = saved_mark(v).unwrap_or_default();
                let (option, value) = match word {
                    "--or-mark" => ("--set-xmark", format!("{mark}/{mark}")),
                    "--xor-mark" => ("--set-xmark", format!("{mark}/0x0")),
                    _ => ("--mark", mark),
                };
                words.extend([option.to_owned(), value]);
            }
            ("-s" | "-d", Some(addr)) => {
                iter.next();
                words.extend([word.to_owned(), saved_address(addr, family)]);
            }
            ("ipvs", _) if words.last().is_some_and(|w| w == "-m") => {
                words.push(word.to_owned());
                let mut options = Vec::new();
                while let Some(option) = iter.next_if(|w| w.starts_with("--v")) {
                    options.push((option, iter.next().unwrap_or_default()));
                }
                words.extend(saved_ipvs_options(&options));
            }
            _ => words.push(word.to_owned()),
        }
    }
    let rejects = words.windows(2).any(|w| w[0] == "-j" && w[1] == "REJECT");
    if rejects && !words.iter().any(|w| w == "--reject-with") {
        let default = match family {
            IpFamily::V4 => "icmp-port-unreachable",
            IpFamily::V6 => "icmp6-port-unreachable",
        };
        words.extend(["--reject-with".into(), default.into()]);
    }
    if words == rule.words() {
        Ok(rule)
    } else {
        Rule::from_args(words)
    }
}

/// The desired nat and filter tables of one family, in that order, each rule
/// in the form `iptables-save` prints.
///
/// # Errors
/// [`Error::InvalidRule`] when a generated rule does not parse (a bug in the
/// generator, named by the rule).
pub fn tables(state: &DesiredState, family: IpFamily) -> Result<Vec<DesiredTable>, Error> {
    let rules = Ruleset::build(family, state);
    TABLES
        .iter()
        .map(|(table, chains)| {
            let lines = match table {
                Table::Nat => &rules.nat,
                _ => &rules.filter,
            };
            let mut desired = DesiredTable::new(*table, ownership(chains));
            for name in *chains {
                desired.chains.push(Chain {
                    name: name.parse()?,
                    rules: Vec::new(),
                });
            }
            for line in lines {
                let (chain, rule) = appended(line)?;
                let rule = canonical(rule, family)?;
                match desired.chains.iter_mut().find(|c| c.name == chain) {
                    Some(c) => c.rules.push(rule),
                    None => {
                        return Err(Error::InvalidRule {
                            rule: line.clone(),
                            why: "appends to a chain kube-proxy does not declare",
                        });
                    }
                }
            }
            for jump in rules
                .jumps
                .iter()
                .filter(|j| j.table == desired_table(*table))
            {
                desired.jumps.push(Jump {
                    from: jump.from.parse()?,
                    rule: Rule::parse(&jump.rule())?,
                });
            }
            Ok(desired)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use desired::iptables::JUMPS;
    use iptables::{Learned, Ruleset as Saved, plan};

    fn by_name<'a>(t: &'a DesiredTable, name: &str) -> &'a Chain {
        t.chains.iter().find(|c| c.name.as_str() == name).unwrap()
    }

    #[test]
    fn every_kube_proxy_chain_is_declared_with_its_rules() {
        let state = DesiredState::default();
        let tables = tables(&state, IpFamily::V4).unwrap();
        let [nat, filter] = &tables[..] else {
            panic!("two tables")
        };
        assert_eq!(nat.table, Table::Nat);
        assert_eq!(nat.chains.len(), NAT_CHAINS.len());
        assert_eq!(filter.chains.len(), FILTER_CHAINS.len());
        assert_eq!(nat.jumps.len() + filter.jumps.len(), JUMPS.len());
        let ruleset = Ruleset::build(IpFamily::V4, &state);
        let total: usize = tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum();
        assert_eq!(total, ruleset.nat.len() + ruleset.filter.len());
        assert_eq!(
            by_name(nat, "KUBE-SERVICES").rules[0],
            Rule::parse("-s 127.0.0.0/8 -j RETURN").unwrap()
        );
        assert!(by_name(filter, "KUBE-PROXY-FIREWALL").rules.is_empty());
        assert_eq!(
            filter.jumps[0].rule,
            Rule::parse(r#"-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD"#)
                .unwrap()
        );
        assert!(nat.ownership.owns("KUBE-MARK-MASQ"));
        assert!(
            !nat.ownership.owns("KUBE-SVC-ABCDEF"),
            "iptables mode's chains"
        );
        assert!(!filter.ownership.owns("KUBE-FIREWALL"), "kubelet's chain");
    }

    #[test]
    fn planning_from_an_empty_table_writes_what_kube_proxy_restores() {
        let state = DesiredState::default();
        let tables = tables(&state, IpFamily::V6).unwrap();
        let empty = Saved::parse(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
        )
        .unwrap();
        let first = plan(&empty.tables[&Table::Nat], &tables[0], &Learned::default())
            .unwrap()
            .unwrap();
        assert_eq!(first.rewritten.len(), NAT_CHAINS.len());
        assert_eq!(first.jumps_inserted.len(), 3);
        assert!(
            first
                .text()
                .contains("-A KUBE-SERVICES -s ::1/128 -j RETURN\n")
        );
        // Deleting everything of ours leaves foreign chains and jumps alone.
        let ours_and_theirs = Saved::parse(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n:KUBE-SERVICES - [0:0]\n\
             :KUBE-SVC-X - [0:0]\n-A PREROUTING -j DOCKER\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n",
        )
        .unwrap();
        let gone = plan(
            &ours_and_theirs.tables[&Table::Nat],
            &nothing()[0],
            &Learned::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(gone.deleted.len(), 1);
        assert_eq!(gone.deleted[0].as_str(), "KUBE-SERVICES");
        assert_eq!(gone.rules_deleted.len(), 1);
    }

    #[test]
    fn rules_are_spelled_as_iptables_save_prints_them() {
        let canon = |text: &str, family| {
            canonical(Rule::parse(text).unwrap(), family)
                .unwrap()
                .words()
                .join(" ")
        };
        // What iptables-save printed after restoring kube-proxy's rules (nf_tables backend).
        assert_eq!(
            canon("-j MARK --or-mark 0x004000", IpFamily::V4),
            "-j MARK --set-xmark 0x4000/0x4000"
        );
        assert_eq!(
            canon("-j MARK --xor-mark 0x004000", IpFamily::V4),
            "-j MARK --set-xmark 0x4000/0x0"
        );
        assert_eq!(
            canon("-m mark ! --mark 0x004000/0x004000 -j RETURN", IpFamily::V4),
            "-m mark ! --mark 0x4000/0x4000 -j RETURN"
        );
        assert_eq!(
            canon(
                "-m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT",
                IpFamily::V6
            ),
            "-m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT --reject-with icmp6-port-unreachable"
        );
        assert_eq!(
            canon(
                "-s 192.0.2.100 -m ipvs --vaddr 192.0.2.100 --vproto tcp --vport 80 -j DROP",
                IpFamily::V4
            ),
            "-s 192.0.2.100/32 -m ipvs --vproto 6 --vaddr 192.0.2.100 --vport 80 -j DROP"
        );
        assert_eq!(
            canon(
                "-s ::1/128 -m ipvs --vaddr fd00::1 --vproto udp --vport 53 -j DROP",
                IpFamily::V6
            ),
            "-s ::1/128 -m ipvs --vproto 17 --vaddr fd00::1 --vport 53 -j DROP"
        );
        // Comments keep their spaces; everything else is left as it is.
        let comment = r#"-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT"#;
        assert_eq!(
            canonical(Rule::parse(comment).unwrap(), IpFamily::V4).unwrap(),
            Rule::parse(comment).unwrap()
        );
        assert_eq!(saved_mark("0x0"), Some("0x0".into()));
        assert_eq!(saved_mark("mark"), None);
    }

    #[test]
    fn a_rule_outside_the_declared_chains_is_an_error() {
        assert!(appended("-A KUBE-SERVICES -j RETURN").is_ok());
        assert!(matches!(
            appended("-I KUBE-SERVICES 1 -j RETURN"),
            Err(Error::InvalidRule { .. })
        ));
    }
}

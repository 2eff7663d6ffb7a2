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

/// The desired nat and filter tables of one family, in that order.
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
    fn a_rule_outside_the_declared_chains_is_an_error() {
        assert!(appended("-A KUBE-SERVICES -j RETURN").is_ok());
        assert!(matches!(
            appended("-I KUBE-SERVICES 1 -j RETURN"),
            Err(Error::InvalidRule { .. })
        ));
    }
}

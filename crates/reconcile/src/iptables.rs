//! kube-proxy's IPVS-mode iptables rules as the iptables writer's
//! [`DesiredTable`]s: one per table (nat, filter) and family.
//!
//! The chains are exactly the ones kube-proxy declares in IPVS mode
//! ([`KubeChain::NAT`], [`KubeChain::FILTER`]), each with all its rules (an
//! empty chain stays declared); the jumps into them from the built-in chains
//! are kept once each. Only those chain names are owned: the writer never
//! touches another chain, not even one named `KUBE-…` by kube-proxy's
//! iptables mode or kubelet. The rules are the typed values
//! [`desired::iptables::Ruleset`] built, taken as they are.

use desired::DesiredState;
use desired::iptables::{KubeChain, Ruleset, Table};
use iptables::{Chain, DesiredTable, Error, Family, Jump, Ownership};
use model::IpFamily;

/// The writer's family for an address family.
pub fn family(family: IpFamily) -> Family {
    match family {
        IpFamily::V4 => Family::V4,
        IpFamily::V6 => Family::V6,
    }
}

/// What we own in `table`: kube-proxy's IPVS-mode chains of that table.
fn ownership(table: Table) -> Ownership {
    Ownership::names(KubeChain::of(table).iter().map(|c| c.name()))
}

/// Nothing of ours in any table: applying these deletes our chains and the
/// jumps into them (`--cleanup`).
pub fn nothing() -> Vec<DesiredTable> {
    Table::ALL
        .into_iter()
        .map(|table| DesiredTable::new(table.into(), ownership(table)))
        .collect()
}

/// The desired nat and filter tables of one family, in that order, each rule
/// in the form `iptables-save` prints.
///
/// # Errors
/// [`Error::InvalidRule`] when a rule cannot be written (a configured
/// local-traffic detector's interface name with a line break), named by the
/// rule.
pub fn tables(state: &DesiredState, family: IpFamily) -> Result<Vec<DesiredTable>, Error> {
    let rules = Ruleset::build(family, state)?;
    let jumps = rules.jumps().to_vec();
    rules
        .into_rules()
        .into_iter()
        .map(|(table, appended)| {
            let mut desired = DesiredTable::new(table.into(), ownership(table));
            for chain in KubeChain::of(table) {
                desired.chains.push(Chain {
                    name: chain.name().parse()?,
                    rules: Vec::new(),
                });
            }
            // Each rule's chain is one of its table's, at its index.
            for a in appended {
                desired.chains[a.chain.index()].rules.push(a.rule);
            }
            for jump in jumps.iter().filter(|j| j.table() == table) {
                desired.jumps.push(Jump {
                    from: jump.from.parse()?,
                    rule: jump.rule()?,
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
    use iptables::{Learned, Rule, Ruleset as Saved, plan};

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
        assert_eq!(nat.table, iptables::Table::Nat);
        assert_eq!(nat.chains.len(), KubeChain::NAT.len());
        assert_eq!(filter.chains.len(), KubeChain::FILTER.len());
        assert_eq!(nat.jumps.len() + filter.jumps.len(), JUMPS.len());
        let ruleset = Ruleset::build(IpFamily::V4, &state).unwrap();
        let total: usize = tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum();
        assert_eq!(
            total,
            ruleset.rules(Table::Nat).len() + ruleset.rules(Table::Filter).len()
        );
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
        let first = plan(
            &empty.tables[&iptables::Table::Nat],
            &tables[0],
            &Learned::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(first.rewritten.len(), KubeChain::NAT.len());
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
            &ours_and_theirs.tables[&iptables::Table::Nat],
            &nothing()[0],
            &Learned::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(gone.deleted.len(), 1);
        assert_eq!(gone.deleted[0].as_str(), "KUBE-SERVICES");
        assert_eq!(gone.rules_deleted.len(), 1);
    }
}

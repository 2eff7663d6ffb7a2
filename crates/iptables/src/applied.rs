//! The state a table is in after an apply, without reading all of it again:
//! the state planned against, with the chains the plan wrote replaced by what
//! the kernel printed for them. This is what lets a writer plan the next
//! change against the state it applied (kube-proxy's partial syncs) and read
//! the whole table only on its periodic full sync.

use std::collections::HashMap;

use crate::{ChainName, ChainState, Counters, Plan, Rule, TableState};

/// The chains whose rules an apply of `plan` changes and that must be read
/// back: rewritten chains and built-in chains that gained or lost a rule.
pub(crate) fn chains_to_read_back(plan: &Plan) -> Vec<&ChainName> {
    let mut chains: Vec<&ChainName> = plan.rewritten.iter().collect();
    let touched = plan
        .jumps_inserted
        .iter()
        .map(|j| &j.from)
        .chain(plan.rules_deleted.iter().map(|(chain, _)| chain));
    for chain in touched {
        if !chains.contains(&chain) {
            chains.push(chain);
        }
    }
    chains
}

/// `before` with `plan` applied: deleted chains gone, chains kept because
/// referenced now empty, and the chains of [`chains_to_read_back`] holding
/// the rules read back (`read_back`).
pub(crate) fn after_apply(
    before: &TableState,
    plan: &Plan,
    mut read_back: HashMap<ChainName, Vec<Rule>>,
) -> TableState {
    let mut after = before.clone();
    after.chains.retain(|c| !plan.deleted.contains(&c.name));
    for chain in &mut after.chains {
        if plan.kept_referenced.contains(&chain.name) {
            chain.rules.clear();
        }
        if let Some(rules) = read_back.remove(&chain.name) {
            chain.rules = rules;
        }
    }
    // What is left was not in `before`: new chains of ours, or a built-in
    // chain that nf_tables created for an inserted jump.
    let mut new: Vec<(ChainName, Vec<Rule>)> = read_back.into_iter().collect();
    new.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, rules) in new {
        let policy = (!plan.rewritten.contains(&name)).then(|| "ACCEPT".to_owned());
        after.chains.push(ChainState {
            name,
            policy,
            counters: Counters::default(),
            rules,
        });
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Chain, DesiredTable, Jump, Learned, Ownership, Ruleset, Table, plan};

    fn rule(text: &str) -> Rule {
        Rule::parse(text).unwrap()
    }

    #[test]
    fn applied_state_equals_what_the_kernel_would_show() {
        let before = Ruleset::parse(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-OLD - [0:0]\n:KUBE-SAME - [0:0]\n\
             -A PREROUTING -j KUBE-OLD\n-A KUBE-SAME -j RETURN\nCOMMIT\n",
        )
        .unwrap()
        .tables
        .remove(&Table::Nat)
        .unwrap();
        let mut desired = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
        desired.chains.push(Chain {
            name: "KUBE-SAME".parse().unwrap(),
            rules: vec![rule("-j RETURN")],
        });
        desired.chains.push(Chain {
            name: "KUBE-NEW".parse().unwrap(),
            rules: vec![rule("-j MARK --or-mark 0x4000")],
        });
        desired.jumps.push(Jump {
            from: "OUTPUT".parse().unwrap(),
            rule: rule("-j KUBE-NEW"),
        });
        let plan = plan(&before, &desired, &Learned::default())
            .unwrap()
            .unwrap();
        let names: Vec<&str> = chains_to_read_back(&plan)
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(names, ["KUBE-NEW", "OUTPUT", "PREROUTING"]);

        let read_back = HashMap::from([
            (
                "KUBE-NEW".parse().unwrap(),
                vec![rule("-j MARK --set-xmark 0x4000/0x4000")],
            ),
            ("OUTPUT".parse().unwrap(), vec![rule("-j KUBE-NEW")]),
            ("PREROUTING".parse().unwrap(), vec![]),
        ]);
        let after = after_apply(&before, &plan, read_back);
        assert!(after.chain("KUBE-OLD").is_none());
        assert_eq!(after.chain("KUBE-SAME"), before.chain("KUBE-SAME"));
        assert!(after.chain("PREROUTING").unwrap().rules.is_empty());
        let new = after.chain("KUBE-NEW").unwrap();
        assert!(!new.is_builtin());
        assert_eq!(new.rules, [rule("-j MARK --set-xmark 0x4000/0x4000")]);
    }
}

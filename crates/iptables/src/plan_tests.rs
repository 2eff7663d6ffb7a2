use super::*;
use crate::{Chain, Ownership, Ruleset};

const NFT: &str = include_str!("../testdata/kube-proxy-ipvs.nft.save");

fn table(save: &str, table: Table) -> TableState {
    Ruleset::parse(save).unwrap().tables.remove(&table).unwrap()
}

fn chain(name: &str, rules: &[&str]) -> Chain {
    Chain {
        name: name.parse().unwrap(),
        rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
    }
}

fn jump(from: &str, to: &str, comment: &str) -> Jump {
    Jump {
        from: from.parse().unwrap(),
        rule: Rule::from_args(["-m", "comment", "--comment", comment, "-j", to]).unwrap(),
    }
}

/// The desired filter table equal to what the captured save holds.
fn desired_filter(current: &TableState) -> DesiredTable {
    DesiredTable::from_current(current, Ownership::prefixes(["KUBE-"]))
}

fn run(current: &TableState, desired: &DesiredTable) -> Option<Plan> {
    plan(current, desired, &Learned::default()).unwrap()
}

#[test]
fn nothing_to_do_when_equal() {
    let current = table(NFT, Table::Filter);
    assert_eq!(run(&current, &desired_filter(&current)), None);
}

#[test]
fn one_changed_chain_rewrites_only_that_chain() {
    let current = table(NFT, Table::Filter);
    let mut desired = desired_filter(&current);
    let fw = desired
        .chains
        .iter_mut()
        .find(|c| c.name.as_str() == "KUBE-SOURCE-RANGES-FIREWALL")
        .unwrap();
    fw.rules
        .insert(0, Rule::parse("-s 192.0.2.0/24 -j RETURN").unwrap());
    let plan = run(&current, &desired).unwrap();
    assert_eq!(
        plan.text(),
        "*filter\n\
         :KUBE-SOURCE-RANGES-FIREWALL - [0:0]\n\
         -A KUBE-SOURCE-RANGES-FIREWALL -s 192.0.2.0/24 -j RETURN\n\
         -A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment \"Kubernetes service load balancer ip + port + source cidr for packet filter purpose\" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN\n\
         -A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n\
         COMMIT\n"
    );
    assert_eq!(plan.rewritten.len(), 1);
    assert_eq!(
        plan.line(3),
        Some(&LineOrigin::Append {
            chain: "KUBE-SOURCE-RANGES-FIREWALL".parse().unwrap(),
            index: 0,
            rule: Rule::parse("-s 192.0.2.0/24 -j RETURN").unwrap(),
        })
    );
    assert_eq!(plan.line(plan.line_count()), Some(&LineOrigin::Commit));
    assert_eq!(plan.line(0), None);
}

#[test]
fn removed_chain_is_flushed_unhooked_and_deleted() {
    let current = table(NFT, Table::Filter);
    let mut desired = desired_filter(&current);
    // KUBE-PROXY-FIREWALL goes, with its two jumps from INPUT and FORWARD.
    desired
        .chains
        .retain(|c| c.name.as_str() != "KUBE-PROXY-FIREWALL");
    desired
        .jumps
        .retain(|j| j.rule.target() != Some("KUBE-PROXY-FIREWALL"));
    let plan = run(&current, &desired).unwrap();
    assert_eq!(
        plan.text(),
        "*filter\n\
         :KUBE-PROXY-FIREWALL - [0:0]\n\
         -D INPUT -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL\n\
         -D FORWARD -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL\n\
         -X KUBE-PROXY-FIREWALL\n\
         COMMIT\n"
    );
    assert_eq!(
        plan.deleted,
        ["KUBE-PROXY-FIREWALL".parse::<ChainName>().unwrap()]
    );
    assert!(plan.rewritten.is_empty());
}

#[test]
fn chain_referenced_by_a_foreign_chain_is_flushed_but_kept() {
    let current = table(
        "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-OLD - [0:0]\n:THEIRS - [0:0]\n\
         -A KUBE-OLD -j DROP\n-A THEIRS -j KUBE-OLD\nCOMMIT\n",
        Table::Filter,
    );
    let desired = DesiredTable::new(Table::Filter, Ownership::prefixes(["KUBE-"]));
    let plan = run(&current, &desired).unwrap();
    assert_eq!(plan.text(), "*filter\n:KUBE-OLD - [0:0]\nCOMMIT\n");
    assert_eq!(
        plan.kept_referenced,
        ["KUBE-OLD".parse::<ChainName>().unwrap()]
    );
    assert!(plan.deleted.is_empty());
}

#[test]
fn missing_jumps_are_inserted_in_list_order() {
    let current = table(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        Table::Nat,
    );
    let mut desired = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
    desired.chains.push(chain("KUBE-SERVICES", &[]));
    desired.chains.push(chain("KUBE-FIRST", &[]));
    desired
        .jumps
        .push(jump("PREROUTING", "KUBE-FIRST", "first"));
    desired.jumps.push(jump(
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ));
    desired.jumps.push(jump(
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ));
    let plan = run(&current, &desired).unwrap();
    assert_eq!(
        plan.text(),
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-FIRST - [0:0]\n\
         -I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -I PREROUTING 1 -m comment --comment first -j KUBE-FIRST\n\
         COMMIT\n"
    );
}

#[test]
fn jumps_present_once_duplicates_removed_foreign_rules_untouched() {
    let current = table(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
         -A PREROUTING -j DOCKER\n\
         -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A PREROUTING -m comment --comment \"old comment\" -j KUBE-SERVICES\n\
         COMMIT\n",
        Table::Nat,
    );
    let mut desired = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
    desired.chains.push(chain("KUBE-SERVICES", &[]));
    desired.jumps.push(jump(
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ));
    let plan = run(&current, &desired).unwrap();
    assert_eq!(
        plan.text(),
        "*nat\n\
         -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -D PREROUTING -m comment --comment \"old comment\" -j KUBE-SERVICES\n\
         COMMIT\n"
    );
    assert!(plan.jumps_inserted.is_empty());
    assert_eq!(plan.rules_deleted.len(), 2);
}

#[test]
fn learned_saved_forms_count_as_equal() {
    let current = table(NFT, Table::Nat);
    let mut desired = DesiredTable::from_current(&current, Ownership::prefixes(["KUBE-"]));
    let masq = desired
        .chains
        .iter_mut()
        .find(|c| c.name.as_str() == "KUBE-MARK-MASQ")
        .unwrap();
    masq.rules = vec![Rule::parse("-j MARK --or-mark 0x004000").unwrap()];
    let saved = current.chain("KUBE-MARK-MASQ").unwrap().rules.clone();

    let mut learned = Learned::default();
    let plan = plan(&current, &desired, &learned).unwrap().unwrap();
    assert_eq!(
        plan.rewritten,
        ["KUBE-MARK-MASQ".parse::<ChainName>().unwrap()]
    );
    learned.learn_chain(&plan.rewritten[0], &desired.chains[1].rules, &saved);
    assert_eq!(super::plan(&current, &desired, &learned).unwrap(), None);
}

#[test]
fn new_table_from_empty() {
    let current = TableState::empty(Table::Filter);
    let mut desired = DesiredTable::new(Table::Filter, Ownership::default());
    desired.chains.push(chain(
        "KUBE-FORWARD",
        &["-m mark --mark 0x4000/0x4000 -j ACCEPT"],
    ));
    desired.chains.push(chain("KUBE-COUNT", &[""]));
    desired.jumps.push(jump(
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
    ));
    let plan = run(&current, &desired).unwrap();
    assert_eq!(
        plan.text(),
        "*filter\n:KUBE-FORWARD - [0:0]\n:KUBE-COUNT - [0:0]\n\
         -A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT\n-A KUBE-COUNT\n\
         -I FORWARD 1 -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
         COMMIT\n"
    );
}

#[test]
fn inconsistent_desired_tables_are_refused() {
    let current = table(NFT, Table::Filter);
    let base = desired_filter(&current);
    let mut twice = base.clone();
    twice.chains.push(twice.chains[0].clone());
    let mut builtin = base.clone();
    builtin.chains.push(chain("INPUT", &[]));
    let mut from_user = base.clone();
    from_user
        .jumps
        .push(jump("SOMEONE-ELSE", "KUBE-FORWARD", "x"));
    let mut from_ours = base.clone();
    from_ours
        .jumps
        .push(jump("KUBE-FORWARD", "KUBE-NODE-PORT", "x"));
    let mut dangling = base.clone();
    dangling.jumps.push(jump("INPUT", "KUBE-NOT-DESIRED", "x"));
    let mut to_unwanted = base.clone();
    to_unwanted.chains[0]
        .rules
        .push(Rule::parse("-j KUBE-GONE").unwrap());
    let mut jump_twice = base.clone();
    jump_twice.jumps.push(jump_twice.jumps[0].clone());
    for (what, desired) in [
        ("chain twice", twice),
        ("built-in", builtin),
        ("from a user chain", from_user),
        ("from our chain", from_ours),
        ("dangling", dangling),
        ("jump twice", jump_twice),
        ("rule to an owned chain not desired", to_unwanted),
    ] {
        assert!(
            matches!(
                plan(&current, &desired, &Learned::default()),
                Err(Error::InvalidDesired { .. })
            ),
            "{what}"
        );
    }
}

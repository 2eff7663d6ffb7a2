//! Whole IPVS-mode syncs (IPVS, `kube-ipvs0`, ipsets, iptables, conntrack) against the
//! in-memory kernel. Expected values are kube-proxy's IPVS mode: the ClusterIP bound to
//! `kube-ipvs0`, its `ip,port` in `KUBE-CLUSTER-IP` (`10.96.0.10,tcp:80`), a `KUBE-SERVICES`
//! rule matching that set, and a part that cannot be synced failing alone.

use iptables::{Family, Rule, Table};

use super::IpvsSync;
use crate::fake::ipset::FakeSets;
use crate::fake::iptables::{Failure, lock};
use crate::fake::{Fake, Node};
use crate::fixtures::{model, node as node_info, service, slice};
use crate::summary::Part;
use desired::DesiredState;
use model::IpFamily;

fn web() -> DesiredState {
    let model = model(vec![
        service("web", "10.96.0.10", "TCP", 80),
        slice("web", "TCP", &["10.244.1.5"]),
    ]);
    DesiredState::new(Default::default(), node_info(), &model)
}

/// A node whose tables a first sync of [`web`] programmed, and its dataplane.
fn synced() -> (Node, FakeSets, IpvsSync<Fake>, DesiredState) {
    let node = Node::default();
    let sets = node.sets();
    let state = web();
    let mut dp = node.dataplane(&sets);
    assert!(dp.sync(&state, false).complete());
    (node, sets, dp, state)
}

fn services_rules(node: &Node) -> Vec<String> {
    let nat = lock(&node.rules).table(Family::V4, Table::Nat);
    nat.chain("KUBE-SERVICES")
        .map(|c| c.rules.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn a_first_sync_programs_every_table_and_a_restart_changes_nothing() {
    let node = Node::default();
    let sets = node.sets();
    let state = web();
    let first = node.dataplane(&sets).sync(&state, false);
    assert!(first.complete(), "{first:?}");
    assert_eq!(node.ipvs.table().listing().len(), 1);
    assert_eq!(
        node.link.link().bound,
        ["10.96.0.10".parse().expect("ip")].into()
    );
    let members: Vec<String> = sets
        .sets()
        .members("KUBE-CLUSTER-IP")
        .expect("KUBE-CLUSTER-IP")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(members, ["10.96.0.10,tcp:80"]);
    assert!(
        services_rules(&node)
            .iter()
            .any(|r| r.contains("--match-set KUBE-CLUSTER-IP dst,dst")),
        "{:?}",
        services_rules(&node)
    );

    let restart = node.dataplane(&sets).sync(&state, true);
    assert!(restart.complete(), "{restart:?}");
    assert!(
        restart.applied.is_empty() && restart.drift.is_empty(),
        "{restart:?}"
    );
}

#[test]
fn drift_in_sets_and_addresses_is_repaired_and_counted_by_kind() {
    let (node, sets, mut dp, state) = synced();
    sets.sets().flush("KUBE-CLUSTER-IP");
    node.link.link().bound.clear();
    let full = dp.sync(&state, true);
    assert!(full.complete(), "{full:?}");
    assert_eq!(full.drift, [("address", 1), ("ipset_entry", 1)].into());
    assert_eq!(full.applied, [("address", 1), ("ipset_entry", 1)].into());
}

#[test]
fn a_change_driven_sync_after_a_clean_one_starts_from_what_it_left_without_listing_the_sets() {
    let (_node, sets, mut dp, _) = synced();
    let both = DesiredState::new(
        Default::default(),
        node_info(),
        &model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            slice("web", "TCP", &["10.244.1.5"]),
            service("db", "10.96.0.11", "TCP", 5432),
        ]),
    );
    // What a sync that lists the sets makes of the same change, on another node.
    let (_, listing, mut listed_dp, _) = synced();
    let listed = listed_dp.sync(&both, true);
    assert!(listed.complete(), "{listed:?}");

    sets.sets().unlistable = true;
    let change = dp.sync(&both, false);
    assert!(change.complete(), "{change:?}");
    assert_eq!(change.applied, listed.applied);
    assert_eq!(contents(&sets), contents(&listing));
    let cluster_ips = &contents(&sets)["KUBE-CLUSTER-IP"];
    assert_eq!(cluster_ips, &["10.96.0.10,tcp:80", "10.96.0.11,tcp:5432"]);

    // A full sync lists them, and cannot.
    let full = dp.sync(&both, true);
    assert_eq!(full.broken, [Part::Ipset], "{full:?}");

    // After a sync that did not sync every set, a change-driven one lists them too, and
    // finds what changed behind its back.
    sets.sets().unlistable = false;
    sets.sets().flush("KUBE-CLUSTER-IP");
    let after = dp.sync(&both, false);
    assert!(after.complete(), "{after:?}");
    assert_eq!(after.applied.get("ipset_entry"), Some(&2), "{after:?}");
    assert_eq!(
        after.drift.get("ipset_entry"),
        None,
        "no clean sync to compare with"
    );
    assert_eq!(contents(&sets), contents(&listing));
}

#[test]
fn a_change_driven_sync_after_a_clean_one_binds_from_what_it_left_without_listing_the_link() {
    let (node, _sets, mut dp, _) = synced();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
    let both = DesiredState::new(
        Default::default(),
        node_info(),
        &model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            service("db", "10.96.0.11", "TCP", 5432),
        ]),
    );
    assert_eq!(node.link.link().listings, 1);
    let change = dp.sync(&both, false);
    assert!(change.complete(), "{change:?}");
    assert_eq!(change.applied.get("address"), Some(&1), "{change:?}");
    assert_eq!(node.link.link().listings, 1, "a change-driven sync listed");
    assert_eq!(
        node.link.link().bound,
        [ip("10.96.0.10"), ip("10.96.0.11")].into()
    );

    // Unbound by hand: drift, which the next full sync finds and repairs.
    node.link.link().bound.remove(&ip("10.96.0.10"));
    let full = dp.sync(&both, true);
    assert_eq!(node.link.link().listings, 2);
    assert_eq!(full.drift, [("address", 1)].into(), "{full:?}");
    assert_eq!(node.link.link().bound.len(), 2);
}

/// Every set's members, spelled as `ipset save` spells them.
fn contents(sets: &FakeSets) -> std::collections::BTreeMap<String, Vec<String>> {
    let sets = sets.sets();
    (sets.names().into_iter())
        .map(|name| {
            let members = sets.members(&name).unwrap_or_default();
            let members = members.iter().map(ToString::to_string).collect();
            (name, members)
        })
        .collect()
}

/// Breaks one table of `node`.
fn break_one(node: &Node, sets: &FakeSets, part: Part) {
    match part {
        Part::Ipvs => node.ipvs.table().unreadable = true,
        Part::Address => node.link.link().gone = true,
        Part::Ipset => sets.sets().unlistable = true,
        Part::Iptables => lock(&node.rules).fail(Family::V4, Some(Failure::Read)),
        Part::Conntrack => unreachable!("TCP only: conntrack has nothing to do"),
    }
}

#[test]
fn a_part_that_cannot_be_synced_is_the_only_one_broken() {
    for part in [Part::Ipvs, Part::Address, Part::Ipset, Part::Iptables] {
        let node = Node::default();
        let sets = node.sets();
        break_one(&node, &sets, part);
        let summary = node.dataplane(&sets).sync(&web(), false);
        assert_eq!(summary.broken, [part], "{summary:?}");
        assert_eq!(summary.failed, [(part.as_str(), 1)].into(), "{summary:?}");
        // The strand alongside still synced.
        if part == Part::Iptables || part == Part::Ipset {
            assert_eq!(node.ipvs.table().listing().len(), 1, "{part}");
        } else {
            assert!(sets.sets().members("KUBE-CLUSTER-IP").is_some(), "{part}");
        }
    }
}

#[test]
fn a_set_no_longer_wanted_goes_only_once_no_rule_references_it() {
    let (node, sets, mut dp, state) = synced();
    // An IPv6 set of kube-proxy's on this IPv4-only node, which a rule still uses.
    let v6 = reconcile::ipsets::spec(desired::SetKind::ClusterIp, IpFamily::V6);
    let name = v6.name().to_string();
    super::SetTable::sync_listed(&mut sets.clone(), &v6, None, &[]).expect("created");
    let rule = Rule::parse(&format!("-m set --match-set {name} dst,dst -j ACCEPT")).expect("rule");
    lock(&node.rules).edit(Family::V4, Table::Filter, |t| {
        let input = t
            .chains
            .iter_mut()
            .find(|c| c.name.as_str() == "INPUT")
            .expect("INPUT");
        input.rules.push(rule);
    });
    // A stray is drift: a full sync finds it.
    let kept = dp.sync(&state, true);
    assert!(kept.complete() && kept.failed.is_empty(), "{kept:?}");
    assert!(
        sets.sets().names().contains(&name),
        "a referenced set was destroyed"
    );
    lock(&node.rules).edit(Family::V4, Table::Filter, |t| {
        for chain in &mut t.chains {
            chain.rules.retain(|r| !r.to_string().contains(&name));
        }
    });
    let gone = dp.sync(&state, true);
    assert_eq!(gone.applied.get("ipset"), Some(&1), "{gone:?}");
    assert!(!sets.sets().names().contains(&name));
}

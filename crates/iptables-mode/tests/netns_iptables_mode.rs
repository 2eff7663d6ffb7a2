//! The generated tables against the kernel: applied with the `iptables` writer inside fresh
//! network namespaces, with both backends and both families, so every match and target
//! kube-proxy's iptables mode uses (statistic, recent, comment, addrtype, mark, conntrack,
//! REJECT, DNAT, MASQUERADE --random-fully, sctp) is accepted; then read back with the real
//! `iptables-save`, which must round-trip through `iptables-restore`.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

mod common;

use iptables::{Backend, DesiredTable, Family, Iptables, Ruleset, Table, TableState};
use iptables_mode::{Tables, writer_family};
use model::IpFamily;
use testkit::Netns;

const BACKENDS: [(Backend, &str); 2] = [(Backend::Nft, "nft"), (Backend::Legacy, "legacy")];

fn tool(family: Family, backend: &str, what: &str) -> String {
    format!("{}-{backend}-{what}", family.command())
}

/// `iptables-save -t TABLE` in `ns`, as text and parsed.
fn save(ns: &Netns, family: Family, backend: &str, table: Table) -> (String, TableState) {
    let text = ns.run(&[&tool(family, backend, "save"), "-t", table.as_str()]);
    let state = Ruleset::parse(&text)
        .unwrap()
        .tables
        .remove(&table)
        .unwrap_or_else(|| TableState::empty(table));
    (text, state)
}

/// The saved table holds exactly the desired chains, each with as many rules, and each
/// jump once.
fn assert_applied(desired: &DesiredTable, saved: &TableState, text: &str) {
    let by_name = saved.by_name();
    for chain in &desired.chains {
        let now = by_name
            .get(chain.name.as_str())
            .unwrap_or_else(|| panic!("{} missing:\n{text}", chain.name));
        assert_eq!(
            now.rules.len(),
            chain.rules.len(),
            "{}:\n{text}",
            chain.name
        );
    }
    let ours = saved
        .chains
        .iter()
        .filter(|c| !c.is_builtin() && desired.ownership.owns(c.name.as_str()))
        .count();
    let wanted_owned = desired
        .chains
        .iter()
        .filter(|c| desired.ownership.owns(c.name.as_str()))
        .count();
    assert_eq!(ours, wanted_owned, "owned chains:\n{text}");
    for jump in &desired.jumps {
        let from = by_name.get(jump.from.as_str()).unwrap();
        let count = from
            .rules
            .iter()
            .filter(|r| r.target() == jump.rule.target())
            .count();
        assert_eq!(
            count,
            1,
            "{} -> {:?}:\n{text}",
            jump.from,
            jump.rule.target()
        );
    }
}

/// Applies `tables` in a fresh namespace; checks what the kernel holds; re-syncs (nothing
/// to do); round-trips the saved text through `iptables-restore` in a second namespace.
fn apply_and_check(label: &str, tables: &Tables, backend: Backend, name: &str) {
    let family = tables.family;
    let ns = Netns::new("iptm");
    let mut ipt = Iptables::new(family, backend);
    for desired in tables.iter() {
        let plan = ns
            .enter(|| ipt.sync(desired))
            .unwrap_or_else(|e| panic!("{label} {name} {}: {e}", desired.table))
            .expect("a first sync writes");
        assert_eq!(plan.rewritten.len(), desired.chains.len(), "{label}");
        let (text, saved) = save(&ns, family, name, desired.table);
        assert_applied(desired, &saved, &text);
        assert_eq!(
            ns.enter(|| ipt.sync(desired)).unwrap(),
            None,
            "{label} {name} {}: a second sync finds nothing to do",
            desired.table
        );

        let copy = Netns::new("iptmrt");
        let path = std::env::temp_dir().join(format!("{}-{}", copy.name(), desired.table));
        std::fs::write(&path, &text).unwrap();
        copy.sh(&format!(
            "{} < {}",
            tool(family, name, "restore"),
            path.display()
        ));
        std::fs::remove_file(&path).unwrap();
        let (again, _) = save(&copy, family, name, desired.table);
        assert_eq!(
            rules_only(&again),
            rules_only(&text),
            "{label} {name}: iptables-save round-trips"
        );
    }
}

/// The chain and rule lines of `iptables-save` output, without comments and counters.
fn rules_only(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(':') || l.starts_with("-A"))
        .map(|l| match l.split_once(" [") {
            Some((chain, _)) if l.starts_with(':') => chain.to_owned(),
            _ => l.to_owned(),
        })
        .collect()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_iptables_mode_tables_apply_with_both_backends() {
    for case in common::cases() {
        let generator = case.generator();
        for family in generator.families() {
            let tables = generator.tables(family).unwrap();
            assert_eq!(tables.family, writer_family(family));
            for (backend, name) in BACKENDS {
                let label = format!("{}{}{family}", case.dir, case.variant);
                apply_and_check(&label, &tables, backend, name);
            }
        }
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_iptables_mode_cleanup_removes_everything_ours() {
    let case = common::cluster_defaults();
    let generator = case.generator();
    for (backend, name) in BACKENDS {
        let ns = Netns::new("iptmclean");
        let mut ipt = Iptables::new(Family::V4, backend);
        let tables = generator.tables(IpFamily::V4).unwrap();
        for desired in tables.iter() {
            ns.enter(|| ipt.sync(desired)).unwrap();
        }
        for desired in Tables::cleanup(IpFamily::V4).iter() {
            ns.enter(|| ipt.sync(desired)).unwrap();
            let (text, saved) = save(&ns, Family::V4, name, desired.table);
            let left: Vec<_> = saved
                .chains
                .iter()
                .filter(|c| !c.is_builtin() && c.name.as_str() != iptables_mode::KUBELET_FIREWALL)
                .collect();
            assert!(left.is_empty(), "{name}: left behind:\n{text}");
            for chain in saved.chains.iter().filter(|c| c.is_builtin()) {
                for rule in &chain.rules {
                    let target = rule.target().unwrap_or_default();
                    assert!(
                        !desired.ownership.owns(target),
                        "{name}: jump left in {}: {rule}",
                        chain.name
                    );
                }
            }
        }
    }
}

//! The kernel and the real tools accept what the dry run prints: the `ipset save` block
//! restores with `ipset restore` and lists back the same members, and the `iptables-restore`
//! payload loads with `iptables-restore --noflush` / `ip6tables-restore --noflush`, inside a
//! network namespace the test creates.

use std::collections::BTreeSet;
use std::path::Path;

use desired::iptables::Ruleset;
use desired::{Config, DesiredState, NodeInfo};
use model::source::dir;
use model::{IpFamily, Model, ProxyFilter};
use testkit::Netns;

/// The example cluster's desired state; `skip` leaves files out.
fn example_state(skip: &[&str]) -> DesiredState {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster");
    let mut snapshot = dir::Snapshot::default();
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("examples/cluster")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !skip.iter().any(|s| p.ends_with(s)))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        dir::parse(&path, &text, &mut snapshot).expect("parse");
    }
    let mut model = Model::new(ProxyFilter::default(), None);
    for event in snapshot.into_events() {
        model.apply(event);
    }
    let node = model.node().expect("node.yaml");
    DesiredState::new(
        Config::default(),
        NodeInfo::from_node(&node.name, Some(node), &[]),
        &model,
    )
}

fn add_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("add "))
        .map(str::to_owned)
        .collect()
}

fn restore_everything(state: &DesiredState) {
    let ns = Netns::new("restore");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ours = BTreeSet::new();
    for family in state.node().families() {
        let mut sets = String::new();
        desired::render::ipset_save(state, family, &mut sets);
        ours.extend(add_lines(&sets));
        let path = dir.path().join(format!("ipset-{family}"));
        std::fs::write(&path, &sets).expect("write");
        ns.sh(&format!("ipset restore < {}", path.display()));
    }
    assert_eq!(
        add_lines(&ns.run(&["ipset", "save"])),
        ours,
        "ipset lists back what we restored"
    );

    for family in state.node().families() {
        let rules = Ruleset::build(family, state);
        let path = dir.path().join(format!("rules-{family}"));
        std::fs::write(&path, rules.restore_payload()).expect("write");
        let (restore, save) = match family {
            IpFamily::V4 => ("iptables-restore", "iptables-save"),
            IpFamily::V6 => ("ip6tables-restore", "ip6tables-save"),
        };
        ns.sh(&format!("{restore} --noflush < {}", path.display()));
        let saved = ns.run(&[save]);
        let loaded = saved.lines().filter(|l| l.starts_with("-A KUBE-")).count();
        assert_eq!(
            loaded,
            rules.nat.len() + rules.filter.len(),
            "{family}: every rule loaded:\n{saved}"
        );
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_dry_run_ipsets_and_rules_load() {
    // api.yaml needs the `ipvs` iptables match (KUBE-IPVS-OUT-FILTER), which only a kernel with
    // IPVS has: the VM test below covers it.
    restore_everything(&example_state(&["api.yaml"]));
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_dry_run_ipsets_and_rules_load_with_the_ipvs_match() {
    let state = example_state(&[]);
    assert!(
        state.out_filter(IpFamily::V4).next().is_some(),
        "the example has an out-filter rule"
    );
    restore_everything(&state);
}

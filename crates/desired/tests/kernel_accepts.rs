//! The kernel and the real tools accept what the dry run prints: the `ipset save` block
//! restores with `ipset restore` and lists back the same members, and the `iptables-restore`
//! payload loads with `iptables-restore --noflush` / `ip6tables-restore --noflush`, inside a
//! network namespace the test creates.

use std::collections::BTreeSet;
use std::path::Path;

use desired::iptables::{Ruleset, Table};
use desired::{Config, DesiredState, NodeInfo};
use model::source::dir;
use model::{IpFamily, Model, ProxyFilter};
use testkit::Netns;

/// The `-A CHAIN RULE` lines of `family`'s rules, nat then filter, as the dry run prints them.
fn rule_lines(rules: &Ruleset) -> Vec<String> {
    Table::ALL
        .into_iter()
        .flat_map(|t| rules.rules(t))
        .map(ToString::to_string)
        .collect()
}

/// The example cluster's desired state; `skip` leaves files out.
fn example_state(skip: &[&str]) -> DesiredState {
    example_state_with(Config::default(), skip)
}

/// [`example_state`] with `config`.
fn example_state_with(config: Config, skip: &[&str]) -> DesiredState {
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
        config,
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

/// Restores the state's ipsets in `ns`; returns their `add` lines.
fn restore_sets(ns: &Netns, dir: &Path, state: &DesiredState) -> BTreeSet<String> {
    let mut ours = BTreeSet::new();
    for family in state.node().families() {
        let mut sets = String::new();
        desired::render::ipset_save(state, family, &mut sets);
        ours.extend(add_lines(&sets));
        let path = dir.join(format!("ipset-{family}"));
        std::fs::write(&path, &sets).expect("write");
        ns.sh(&format!("ipset restore < {}", path.display()));
    }
    ours
}

fn restore_everything(state: &DesiredState) {
    let ns = Netns::new("restore");
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = restore_sets(&ns, dir.path(), state);
    assert_eq!(
        add_lines(&ns.run(&["ipset", "save"])),
        ours,
        "ipset lists back what we restored"
    );

    for family in state.node().families() {
        let rules = Ruleset::build(family, state).expect("rules");
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
            rule_lines(&rules).len(),
            "{family}: every rule loaded:\n{saved}"
        );
    }
}

/// Restores the state's rules of both families with `backend` (`legacy`, `nft`, or `""` for
/// the host's default tools) in `ns`, whose ipsets exist; returns the rules `iptables-save`
/// does not print back exactly as written.
fn not_read_back(ns: &Netns, dir: &Path, state: &DesiredState, backend: &str) -> Vec<String> {
    let mut differ = Vec::new();
    let suffix = if backend.is_empty() {
        String::new()
    } else {
        format!("-{backend}")
    };
    for (family, tool) in [(IpFamily::V4, "iptables"), (IpFamily::V6, "ip6tables")] {
        let rules = Ruleset::build(family, state).expect("rules");
        let path = dir.join(format!("rules-{family}"));
        std::fs::write(&path, rules.restore_payload()).expect("write");
        ns.sh(&format!(
            "{tool}{suffix}-restore --noflush < {}",
            path.display()
        ));
        let saved = ns.run(&[&format!("{tool}{suffix}-save")]);
        let saved: BTreeSet<&str> = saved.lines().collect();
        differ.extend(
            rule_lines(&rules)
                .iter()
                .filter(|r| !saved.contains(r.as_str()))
                .map(|r| {
                    let chain = r.split(' ').take(2).collect::<Vec<_>>().join(" ");
                    let printed: Vec<&str> = saved
                        .iter()
                        .filter(|l| l.starts_with(&format!("{chain} ")))
                        .copied()
                        .collect();
                    format!("{tool}{suffix}: {r}\n  {chain} as saved: {printed:#?}")
                }),
        );
    }
    differ
}

/// Every IPVS-mode rule we write reads back from `iptables-save` exactly as written, with
/// both backends and every local-traffic detector, so a start on a node kube-proxy
/// programmed (whose rules `iptables-save` prints in that form) finds our chains right and
/// rewrites nothing. The ClusterCIDR masquerade rule is also compared with kube-proxy's own
/// spelling (pkg/proxy/ipvs/README.md).
#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_every_rule_reads_back_as_written_with_both_backends() {
    use desired::LocalDetector;
    let detectors = [
        (LocalDetector::None, false),
        (
            LocalDetector::ClusterCidr(vec!["10.244.0.0/16".parse().expect("cidr")]),
            false,
        ),
        (LocalDetector::BridgeInterface("cbr0".into()), false),
        (LocalDetector::InterfaceNamePrefix("veth".into()), false),
        (LocalDetector::None, true),
    ];
    let mut differ = Vec::new();
    for backend in ["legacy", "nft"] {
        for (local_detector, masquerade_all) in detectors.clone() {
            let config = Config {
                local_detector: local_detector.clone(),
                masquerade_all,
                ..Config::default()
            };
            let state = example_state_with(config, &["api.yaml"]);
            let ns = Netns::new("readback");
            let dir = tempfile::tempdir().expect("tempdir");
            restore_sets(&ns, dir.path(), &state);
            differ.extend(
                not_read_back(&ns, dir.path(), &state, backend)
                    .into_iter()
                    .map(|r| format!("{local_detector:?}: {r}")),
            );
            let rules = rule_lines(&Ruleset::build(IpFamily::V4, &state).expect("rules"));
            if matches!(local_detector, LocalDetector::ClusterCidr(_)) {
                let kube_proxy = "-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment \
                    \"Kubernetes service cluster ip + port for masquerade purpose\" -m set \
                    --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ";
                assert!(rules.iter().any(|r| r == kube_proxy), "{rules:#?}");
            }
        }
    }
    assert!(
        differ.is_empty(),
        "iptables-save prints these otherwise:\n{}",
        differ.join("\n")
    );
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
    // The out-filter rule reads back as written too (the netns test leaves it out).
    let ns = Netns::new("readback");
    let dir = tempfile::tempdir().expect("tempdir");
    restore_sets(&ns, dir.path(), &state);
    let differ = not_read_back(&ns, dir.path(), &state, "");
    assert!(
        differ.is_empty(),
        "iptables-save prints these otherwise:\n{}",
        differ.join("\n")
    );
}

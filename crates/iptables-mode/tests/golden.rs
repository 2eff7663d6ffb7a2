//! Golden tests: each directory under `testdata/` holds the objects of a small cluster
//! (Services, EndpointSlices and this node's Node) and the expected tables per family
//! (`expected.v4.txt`, `expected.v6.txt`), printed by [`iptables_mode::render`], filter
//! then nat. `UPDATE_GOLDEN=1 cargo test -p iptables-mode --test golden` rewrites them for
//! the cases generated here; review the diff. `kube-proxy-overall` is kube-proxy's own
//! expected output and is never rewritten.

use std::path::{Path, PathBuf};

use desired::{Config, LocalDetector, NodeInfo, NodePortAddresses};
use iptables::{Learned, TableState};
use iptables_mode::{Generator, Options, Tables, render};
use model::source::dir;
use model::{IpFamily, Model, ProxyFilter};

fn testdata(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(case)
}

/// A synced model of the case's objects.
fn load(case: &str) -> Model {
    let snapshot = dir::read(&testdata(case)).expect("objects parse");
    assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    let mut model = Model::new(ProxyFilter::default(), None);
    for event in snapshot.into_events() {
        let warnings = model.apply(event);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    assert!(model.is_synced());
    model
}

fn generator(case: &str, config: Config, options: Options) -> (Model, Generator) {
    let model = load(case);
    let node = model.node().expect("the case has its node");
    let node = NodeInfo::from_node(&node.name, Some(node), &[]);
    let generator = Generator::new(config, options, node, &model);
    (model, generator)
}

/// Both tables, filter then nat, as one text.
fn text(tables: &Tables) -> String {
    tables.iter().map(render).collect()
}

/// The writer accepts the tables: every jump target is a wanted chain, nothing is listed
/// twice.
fn assert_consistent(tables: &Tables) {
    for table in tables.iter() {
        let plan = iptables::plan(&TableState::empty(table.table), table, &Learned::default());
        assert!(plan.is_ok(), "{}: {plan:?}", table.table);
    }
}

fn check(case: &str, variant: &str, family: IpFamily, actual: &str, update: bool) {
    let suffix = match family {
        IpFamily::V4 => "v4",
        IpFamily::V6 => "v6",
    };
    let path = testdata(case).join(format!("expected.{variant}{suffix}.txt"));
    if update && std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = diff_lines(&expected, actual);
        panic!("{} differs:\n{}", path.display(), diff.join("\n"));
    }
}

/// The lines only one side has, marked `-` (expected) and `+` (actual).
fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let mut out: Vec<String> = exp
        .iter()
        .filter(|l| !act.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        act.iter()
            .filter(|l| !exp.contains(l))
            .map(|l| format!("+ {l}")),
    );
    if out.is_empty() {
        out.push("(same lines, different order)".to_owned());
    }
    out
}

/// Generates the case's tables with `config` and `options` and compares them with
/// `expected.{variant}v4.txt` and `expected.{variant}v6.txt`.
fn run_case(case: &str, variant: &str, config: Config, options: Options) -> Generator {
    let (_, generator) = generator(case, config, options);
    assert_eq!(generator.rejected().count(), 0);
    for family in generator.families() {
        let tables = generator.tables(family).expect("tables");
        assert_consistent(&tables);
        check(
            case,
            variant,
            family,
            &text(&tables),
            case != "kube-proxy-overall",
        );
    }
    generator
}

/// kube-proxy's `TestOverallIPTablesRules` (pkg/proxy/iptables/proxier_test.go): its fake
/// proxier's configuration, and its expected output (see the case's README for the three
/// deliberate differences).
#[test]
fn kube_proxy_overall() {
    let config = Config {
        local_detector: LocalDetector::ClusterCidr(vec!["10.0.0.0/8".parse().expect("cidr")]),
        random_fully: false,
        ..Config::default()
    };
    run_case("kube-proxy-overall", "", config, Options::default());
}

fn cidrs(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|c| c.parse().expect("cidr")).collect()
}

/// The small cluster of `testdata/cluster` (its README lists what each Service exercises)
/// with the ClusterCIDR detector and kube-proxy's defaults.
#[test]
fn cluster_defaults() {
    let config = Config {
        local_detector: LocalDetector::ClusterCidr(cidrs(&["10.244.0.0/16", "fd00:244::/48"])),
        ..Config::default()
    };
    let generator = run_case("cluster", "", config, Options::default());
    assert_eq!(
        generator.families().collect::<Vec<_>>(),
        [IpFamily::V4, IpFamily::V6]
    );
}

/// The same cluster with `masqueradeAll`, no local detector, selected NodePort addresses,
/// another masquerade bit, no localhost NodePorts and a liberal conntrack.
#[test]
fn cluster_masquerade_all() {
    let config = Config {
        masquerade_all: true,
        local_detector: LocalDetector::None,
        node_port_addresses: NodePortAddresses::Select {
            cidrs: cidrs(&["172.18.0.0/16", "fd00:18::/64"]),
            primary: false,
        },
        masquerade_bit: 15,
        random_fully: true,
        ..Config::default()
    };
    let options = Options {
        localhost_node_ports: false,
        conntrack_tcp_be_liberal: true,
    };
    run_case("cluster", "masquerade-all.", config, options);
}

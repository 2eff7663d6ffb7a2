//! Whole iptables-mode syncs against the in-memory kernel. The expected rules are
//! kube-proxy's (`pkg/proxy/iptables/proxier_test.go`): the jump from PREROUTING and
//! OUTPUT into `KUBE-SERVICES` ("kubernetes service portals"), and one `KUBE-SERVICES`
//! rule per ClusterIP and port that jumps to the Service port's `KUBE-SVC-` chain.

use std::net::IpAddr;

use conntrack::{Flow, Tuple, proto};
use iptables::{Family, Table, TableState};
use iptables_mode::Options;
use model::SourceEvent;

use super::{IptablesRules, IptablesSync};
use crate::conntrack::Flows;
use crate::fake::conntrack::FakeFlows;
use crate::fake::iptables::{Failure, FakeWriter, Kernel, lock};
use crate::fixtures::{model, node, service, slice};
use crate::summary::Part;

fn rules(objects: Vec<model::Object>) -> (model::Model, IptablesRules) {
    let model = model(objects);
    let rules = IptablesRules::new(Default::default(), Options::default(), node(), &model);
    (model, rules)
}

fn web() -> Vec<model::Object> {
    vec![
        service("web", "10.96.0.10", "TCP", 80),
        slice("web", "TCP", &["10.244.1.5", "10.244.2.6"]),
    ]
}

/// An empty kernel, a dataplane over it, and the rules for [`web`].
fn web_on_an_empty_kernel() -> (
    Kernel,
    FakeFlows,
    IptablesSync<FakeWriter, FakeFlows>,
    IptablesRules,
) {
    let kernel = Kernel::default();
    let flows = FakeFlows::default();
    let dp = dataplane(&kernel, &flows);
    let (_, rules) = rules(web());
    (kernel, flows, dp, rules)
}

/// A dataplane over `kernel` with writers of both families and `flows`.
fn dataplane(kernel: &Kernel, flows: &FakeFlows) -> IptablesSync<FakeWriter, FakeFlows> {
    IptablesSync::new(
        vec![
            FakeWriter::new(Family::V4, kernel),
            FakeWriter::new(Family::V6, kernel),
        ],
        Flows::with(flows.clone()),
    )
}

fn nat(kernel: &Kernel) -> TableState {
    lock(kernel).table(Family::V4, Table::Nat)
}

fn restores(kernel: &Kernel) -> usize {
    lock(kernel).restores.values().sum()
}

fn rules_of(table: &TableState, chain: &str) -> Vec<String> {
    table
        .chain(chain)
        .map(|c| c.rules.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn a_first_sync_writes_kube_proxys_chains_and_the_next_ones_write_nothing() {
    let (kernel, _, mut dp, rules) = web_on_an_empty_kernel();
    let first = dp.sync(&rules, false);
    assert!(first.complete(), "{first:?}");
    let nat = nat(&kernel);
    for builtin in ["PREROUTING", "OUTPUT"] {
        assert!(
            rules_of(&nat, builtin).iter().any(
                |r| r.contains("kubernetes service portals") && r.ends_with("-j KUBE-SERVICES")
            ),
            "{builtin}: {:?}",
            rules_of(&nat, builtin)
        );
    }
    // kube-proxy's rule, its chain named "KUBE-SVC-" + the first 16 characters of
    // base32(sha256("default/web:p" + "tcp")).
    let services = rules_of(&nat, "KUBE-SERVICES");
    assert!(
        services.contains(
            &"-m comment --comment \"default/web:p cluster IP\" -m tcp -p tcp -d 10.96.0.10 \
              --dport 80 -j KUBE-SVC-446JGJO3FXDO7OFC"
                .to_owned()
        ),
        "{services:?}"
    );
    // One restore per table of the family the node proxies: the IPv6 tables hold
    // nothing of ours and are already right.
    assert_eq!(
        lock(&kernel).restores.len(),
        2,
        "{:?}",
        lock(&kernel).restores
    );
    assert!(first.applied["iptables_chain"] > 0, "{first:?}");
    assert!(first.drift.is_empty(), "{first:?}");

    let done = restores(&kernel);
    for full in [false, true] {
        let again = dp.sync(&rules, full);
        assert!(
            again.complete() && again.applied.is_empty() && again.drift.is_empty(),
            "{again:?}"
        );
    }
    assert_eq!(
        restores(&kernel),
        done,
        "a sync with nothing to do restored a table"
    );
}

#[test]
fn taking_over_tables_already_right_costs_no_restore() {
    let kernel = Kernel::default();
    let flows = FakeFlows::default();
    let (_, rules) = rules(web());
    // An earlier daemon (or kube-proxy) wrote the rules.
    assert!(dataplane(&kernel, &flows).sync(&rules, true).complete());
    let before = (nat(&kernel), restores(&kernel));
    let summary = dataplane(&kernel, &flows).sync(&rules, true);
    assert!(summary.complete(), "{summary:?}");
    assert!(
        summary.applied.is_empty() && summary.drift.is_empty(),
        "{summary:?}"
    );
    assert_eq!((nat(&kernel), restores(&kernel)), before);
}

#[test]
fn drift_is_seen_by_a_full_sync_only_and_counted_by_kind() {
    let (kernel, _, mut dp, rules) = web_on_an_empty_kernel();
    assert!(dp.sync(&rules, false).complete());
    let right = nat(&kernel);
    // By hand: KUBE-SERVICES flushed, the jump from PREROUTING deleted.
    lock(&kernel).edit(Family::V4, Table::Nat, |t| {
        for chain in &mut t.chains {
            if ["KUBE-SERVICES", "PREROUTING"].contains(&chain.name.as_str()) {
                chain.rules.clear();
            }
        }
    });
    let change = dp.sync(&rules, false);
    assert!(change.complete() && change.applied.is_empty(), "{change:?}");
    let full = dp.sync(&rules, true);
    assert!(full.complete(), "{full:?}");
    assert_eq!(
        full.drift,
        [("iptables_chain", 1), ("iptables_jump", 1)].into()
    );
    assert_eq!(full.applied, full.drift);
    assert_eq!(nat(&kernel), right);
}

#[test]
fn a_missing_save_binary_breaks_the_iptables_part_once_until_it_is_back() {
    let (kernel, _, mut dp, rules) = web_on_an_empty_kernel();
    lock(&kernel).fail(Family::V4, Some(Failure::Read));
    let broken = dp.sync(&rules, true);
    assert_eq!(broken.broken, [Part::Iptables]);
    // Both IPv4 tables failed: one failure of the part, logged once with both causes.
    assert_eq!(broken.failed, [("iptables", 1)].into());
    assert!(!broken.complete());
    lock(&kernel).fail(Family::V4, None);
    let repaired = dp.sync(&rules, false);
    assert!(repaired.complete(), "{repaired:?}");
    assert!(rules_of(&nat(&kernel), "KUBE-SERVICES").len() > 1);
}

#[test]
fn a_refused_restore_leaves_the_table_as_it_was_and_the_part_broken() {
    let (kernel, _, mut dp, rules) = web_on_an_empty_kernel();
    let empty = nat(&kernel);
    lock(&kernel).fail(Family::V4, Some(Failure::Restore));
    let summary = dp.sync(&rules, false);
    assert_eq!(summary.broken, [Part::Iptables]);
    assert_eq!(
        summary.restore_failed,
        [Family::V4].into(),
        "counted once per family"
    );
    assert_eq!(nat(&kernel), empty, "a failed restore changed the table");
    lock(&kernel).fail(Family::V4, None);
    let summary = dp.sync(&rules, false);
    assert!(summary.complete());
    assert!(summary.restore_failed.is_empty());
    assert_ne!(nat(&kernel), empty);
}

fn udp_flow(client: &str, vip: &str, endpoint: &str) -> Flow {
    let ip = |s: &str| s.parse::<IpAddr>().expect("address");
    Flow {
        protocol: proto::UDP,
        orig: Tuple {
            src: ip(client),
            dst: ip(vip),
            src_port: 40000,
            dst_port: 53,
        },
        reply: Tuple {
            src: ip(endpoint),
            dst: ip(client),
            src_port: 8080,
            dst_port: 40000,
        },
        zone: 0,
        id: None,
    }
}

#[test]
fn stale_udp_flows_go_after_the_rules_and_a_broken_conntrack_breaks_only_conntrack() {
    let kernel = Kernel::default();
    let flows = FakeFlows::default();
    let mut dp = dataplane(&kernel, &flows);
    let (mut model, mut rules) = rules(vec![
        service("dns", "10.96.0.53", "UDP", 53),
        slice("dns", "UDP", &["10.244.1.5", "10.244.2.6"]),
    ]);
    assert!(dp.sync(&rules, false).complete());
    // kube-proxy deletes the UDP flows to an endpoint that left the Service.
    let gone = udp_flow("10.0.0.1", "10.96.0.53", "10.244.2.6");
    let kept = udp_flow("10.0.0.2", "10.96.0.53", "10.244.1.5");
    lock_flows(&flows).flows = vec![gone, kept];
    model.apply(SourceEvent::Applied(slice("dns", "UDP", &["10.244.1.5"])));
    let changes = model.take_changes();
    rules.update(&model, &changes, &node());
    let summary = dp.sync(&rules, false);
    assert!(summary.complete(), "{summary:?}");
    assert_eq!(summary.applied.get("conntrack_entry"), Some(&1));
    assert_eq!(lock_flows(&flows).flows, [kept]);

    lock_flows(&flows).broken = true;
    let summary = dp.sync(&rules, true);
    assert_eq!(summary.broken, [Part::Conntrack]);
    assert_eq!(summary.failed, [("conntrack", 1)].into());
}

fn lock_flows(flows: &FakeFlows) -> std::sync::MutexGuard<'_, crate::fake::conntrack::Table> {
    flows.0.lock().unwrap_or_else(|e| e.into_inner())
}

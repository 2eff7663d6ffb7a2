//! Benchmark (prints figures, asserts no times): 10,000 service-like chains
//! applied through the writer, from empty and after one chain changed,
//! against a plain `iptables-restore` of the same input, for both backends.
//!
//! `tests/netns/run netns_bench_ -- --nocapture`

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use std::time::{Duration, Instant};

use iptables::{Backend, Chain, DesiredTable, Family, Iptables, Ownership, Rule, Table};
use testkit::Netns;

const SERVICES: usize = 10_000;

fn service_chain(i: usize) -> String {
    format!("KUBE-SVC-{i:016X}")
}

/// KUBE-SERVICES with one rule per Service, and one chain per Service
/// DNATing to an endpoint, written the way iptables-save prints them.
fn desired(endpoint_octet: usize) -> DesiredTable {
    let mut nat = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
    let mut services = Vec::with_capacity(SERVICES);
    for i in 0..SERVICES {
        let (hi, lo) = (i / 250, i % 250 + 1);
        services.push(
            Rule::parse(&format!(
                "-d 10.96.{hi}.{lo}/32 -p tcp -m comment --comment \"default/svc-{i}:http cluster IP\" \
                 -m tcp --dport 80 -j {}",
                service_chain(i)
            ))
            .unwrap(),
        );
        let octet = if i == 0 { endpoint_octet } else { 5 };
        nat.chains.push(Chain {
            name: service_chain(i).parse().unwrap(),
            rules: vec![
                Rule::parse(&format!(
                    "-p tcp -m comment --comment \"default/svc-{i}:http\" -m tcp -j DNAT \
                     --to-destination 10.244.{hi}.{octet}:8080"
                ))
                .unwrap(),
            ],
        });
    }
    nat.chains.push(Chain {
        name: "KUBE-SERVICES".parse().unwrap(),
        rules: services,
    });
    nat
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_bench_iptables_10k_service_chains() {
    println!(
        "{:<7} {:<28} {:>12} {:>10}",
        "backend", "step", "input bytes", "seconds"
    );
    for backend in [Backend::Nft, Backend::Legacy] {
        let row = |step: &str, bytes: usize, took: Duration| {
            println!(
                "{backend:<7?} {step:<28} {bytes:>12} {:>10.3}",
                took.as_secs_f64()
            );
        };
        let full = desired(5);
        // Baseline: the same input through the plain tool, in its own namespace.
        let baseline_ns = Netns::new("iptbase");
        let baseline = Iptables::new(Family::V4, backend);
        let empty = baseline_ns.enter(|| baseline.read(Table::Nat)).unwrap();
        let plan = baseline.plan(&empty, &full).unwrap().unwrap();
        let ((), took) = timed(|| baseline_ns.enter(|| baseline.restore(&plan)).unwrap());
        row("plain restore, full", plan.text().len(), took);
        drop(baseline_ns);

        let ns = Netns::new("iptbench");
        let mut ipt = Iptables::new(Family::V4, backend);
        let (plan, took) = timed(|| ns.enter(|| ipt.sync(&full)).unwrap().unwrap());
        assert_eq!(plan.rewritten.len(), SERVICES + 1);
        row("sync from empty", plan.text().len(), took);

        let (plan, took) = timed(|| ns.enter(|| ipt.sync(&full)).unwrap());
        assert!(
            plan.is_none(),
            "a resync of an unchanged table must not restore"
        );
        row("no-op resync (save + plan)", 0, took);

        let changed = desired(6);
        let (plan, took) = timed(|| ns.enter(|| ipt.sync(&changed)).unwrap().unwrap());
        assert_eq!(plan.rewritten, [changed.chains[0].name.clone()]);
        row("one chain changed", plan.text().len(), took);

        let (plan, took) = timed(|| ns.enter(|| ipt.sync_from_applied(&full)).unwrap().unwrap());
        assert_eq!(plan.rewritten, [full.chains[0].name.clone()]);
        row("one chain, from applied", plan.text().len(), took);

        let (plan, took) = timed(|| ns.enter(|| ipt.sync_from_applied(&full)).unwrap());
        assert!(plan.is_none());
        row("no-op, from applied", 0, took);

        let current = ns.enter(|| ipt.read(Table::Nat)).unwrap();
        let (_, took) = timed(|| ipt.plan(&current, &full).unwrap());
        row("plan only (no-op)", 0, took);
        let (_, took) = timed(|| ns.enter(|| ipt.read(Table::Nat)).unwrap());
        row("iptables-save + parse", 0, took);
    }
}

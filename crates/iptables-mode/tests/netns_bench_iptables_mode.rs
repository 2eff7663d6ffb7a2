//! Benchmark (prints figures, asserts no times): the iptables mode at 1,000, 5,000 and
//! 10,000 Services × 3 endpoints (every tenth a NodePort): generation, the first sync into
//! an empty network namespace, and one endpoint change (incremental update, then the
//! writer's sync against the state it applied), for both backends.
//!
//! `tests/netns/run netns_bench_iptables_mode -- --nocapture`

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

mod common;

use std::time::{Duration, Instant};

use desired::Config;
use iptables::{Backend, Iptables, Plan};
use iptables_mode::{Generator, Options, Tables};
use model::{IpFamily, SourceEvent};
use testkit::Netns;

const SIZES: [usize; 3] = [1_000, 5_000, 10_000];
const ENDPOINTS: usize = 3;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn row(services: usize, backend: &str, step: &str, detail: &str, bytes: usize, took: Duration) {
    println!(
        "BENCH iptables-mode {services:>6} {backend:<7} {step:<34} {detail:<24} {bytes:>10} {:>9.3}",
        took.as_secs_f64()
    );
}

/// Syncs both tables (filter first) with `sync` or `sync_from_applied`; returns the plans.
fn sync_all(ns: &Netns, ipt: &mut Iptables, tables: &Tables, from_applied: bool) -> Vec<Plan> {
    ns.enter(|| {
        tables
            .iter()
            .filter_map(|t| {
                if from_applied {
                    ipt.sync_from_applied(t).unwrap()
                } else {
                    ipt.sync(t).unwrap()
                }
            })
            .collect()
    })
}

fn summary(plans: &[Plan]) -> (String, usize) {
    let rewritten: usize = plans.iter().map(|p| p.rewritten.len()).sum();
    let deleted: usize = plans.iter().map(|p| p.deleted.len()).sum();
    let bytes = plans.iter().map(|p| p.text().len()).sum();
    (format!("{rewritten} rewritten {deleted} deleted"), bytes)
}

fn rules(tables: &Tables) -> usize {
    tables
        .iter()
        .flat_map(|t| &t.chains)
        .map(|c| c.rules.len())
        .sum()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_bench_iptables_mode() {
    println!(
        "BENCH iptables-mode {:>6} {:<7} {:<34} {:<24} {:>10} {:>9}",
        "svcs", "backend", "step", "", "bytes", "seconds"
    );
    for services in SIZES {
        let mut model = common::model(services, ENDPOINTS);
        let node = common::node_info();
        let (mut generator, took) =
            timed(|| Generator::new(Config::default(), Options::default(), node.clone(), &model));
        row(services, "-", "generate: from scratch", "", 0, took);
        let (full, took) = timed(|| generator.tables(IpFamily::V4).unwrap());
        let chains = full.nat.chains.len() + full.filter.chains.len();
        let detail = format!("{chains} chains {} rules", rules(&full));
        row(services, "-", "generate: assemble tables", &detail, 0, took);

        // One endpoint of Service 1 replaced by another.
        model.apply(SourceEvent::Applied(common::slice(1, 1, ENDPOINTS)));
        let changes = model.take_changes();
        let ((), took) = timed(|| generator.update(&model, &changes, &node));
        row(services, "-", "one endpoint: update", "", 0, took);
        let (changed, took) = timed(|| generator.tables(IpFamily::V4).unwrap());
        row(services, "-", "one endpoint: assemble tables", "", 0, took);

        for (backend, name) in [(Backend::Nft, "nft"), (Backend::Legacy, "legacy")] {
            let ns = Netns::new("iptmbench");
            let mut ipt = Iptables::new(full.family, backend);
            let (plans, took) = timed(|| sync_all(&ns, &mut ipt, &full, false));
            let (detail, bytes) = summary(&plans);
            row(services, name, "sync from empty", &detail, bytes, took);

            let (plans, took) = timed(|| sync_all(&ns, &mut ipt, &changed, true));
            let (detail, bytes) = summary(&plans);
            row(
                services,
                name,
                "one endpoint: sync_from_applied",
                &detail,
                bytes,
                took,
            );

            let (plans, took) = timed(|| sync_all(&ns, &mut ipt, &changed, true));
            assert!(plans.is_empty());
            row(services, name, "no-op: sync_from_applied", "", 0, took);

            let (plans, took) = timed(|| sync_all(&ns, &mut ipt, &full, false));
            let (detail, bytes) = summary(&plans);
            row(
                services,
                name,
                "endpoint back: sync (reads)",
                &detail,
                bytes,
                took,
            );
        }
    }
}

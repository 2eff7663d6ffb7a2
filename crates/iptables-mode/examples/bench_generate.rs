//! Generation cost alone, without the kernel: `cargo run --release -p iptables-mode
//! --example bench_generate [SERVICES] [ENDPOINTS_PER_SERVICE] [CHANGES]` builds the
//! synthetic cluster of the tests (default 10,000 Services × 3 endpoints), generates the
//! tables from scratch, then applies CHANGES (default 1,000) single-EndpointSlice changes,
//! each followed by `update`, then assembles the tables 10 times. Prints wall-clock time and the time this thread
//! spent on a CPU (`/proc/thread-self/schedstat`), which a busy machine does not inflate.

#![allow(clippy::unwrap_used)] // a measuring tool: a failure is a bug to see at once

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use desired::Config;
use iptables_mode::{Generator, Options};
use model::{IpFamily, SourceEvent};

/// Time this thread has spent on a CPU.
fn on_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns = stat.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// Wall-clock and on-CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (start, cpu) = (Instant::now(), on_cpu());
    let out = f();
    (out, start.elapsed(), on_cpu() - cpu)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let services = args.next().unwrap_or(10_000);
    let endpoints = args.next().unwrap_or(3);
    let rounds = args.next().unwrap_or(1_000);
    let mut model = common::model(services, endpoints);
    let node = common::node_info();

    let (mut generator, wall, cpu) =
        timed(|| Generator::new(Config::default(), Options::default(), node.clone(), &model));
    println!("{services} Services x {endpoints} endpoints");
    println!(
        "generate from scratch: {:.1} ms ({:.1} ms on CPU)",
        ms(wall),
        ms(cpu)
    );
    let (tables, wall, cpu) = timed(|| generator.tables(IpFamily::V4).unwrap());
    let chains = tables.nat.chains.len() + tables.filter.chains.len();
    println!(
        "assemble tables ({chains} chains): {:.1} ms ({:.1} ms on CPU)",
        ms(wall),
        ms(cpu)
    );

    // Updates alone, then assemblies alone: a dropped set of tables frees so many
    // allocations that the allocator's deferred work would land on the next update.
    drop(tables);
    let mut update = Duration::ZERO;
    for round in 0..rounds {
        let i = round * 7 % services;
        model.apply(SourceEvent::Applied(common::slice(
            i,
            round % 4 + 1,
            endpoints,
        )));
        let changes = model.take_changes();
        update += timed(|| generator.update(&model, &changes, &node)).2;
    }
    let assemblies = 10;
    let assemble: Duration = (0..assemblies)
        .map(|_| timed(|| generator.tables(IpFamily::V4).unwrap()).2)
        .sum();
    if rounds > 0 {
        let per_update = update / u32::try_from(rounds).unwrap();
        println!(
            "one EndpointSlice change, on CPU: update {:.1} µs; assemble tables {:.1} ms",
            per_update.as_secs_f64() * 1e6,
            ms(assemble / assemblies),
        );
    }
}

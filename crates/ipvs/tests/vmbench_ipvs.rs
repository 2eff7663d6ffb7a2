//! Benchmark (prints numbers, asserts no times): N services × 10 real
//! servers programmed from scratch with the crate's bulk apply and with
//! `ipvsadm -R`, each into its own freshly created namespace (no dest trash
//! from earlier deletions), then dumped with the crate and with
//! `ipvsadm -Sn`; N = 1,000 then 10,000. Run with `tests/vm/run vmbench_`.
//!
//! Rate estimation is switched off in both namespaces
//! (`net.ipv4.vs.run_estimation=0`): Linux 6.1 walks every estimator from
//! one timer every 2 s, which under TCG with 110,000 of them starves
//! everything else and would measure the emulator, not the clients.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::fresh;
use ipvs::{Change, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceKey};
use testkit::Netns;

const DESTS_PER_SERVICE: usize = 10;

fn vip(i: usize) -> ServiceKey {
    let addr = IpAddr::V4(Ipv4Addr::new(10, 100 + (i / 250) as u8, (i % 250) as u8, 1));
    ServiceKey::inet(Protocol::Tcp, addr, 80)
}

fn real_server(i: usize, k: usize) -> Destination {
    let addr = IpAddr::V4(Ipv4Addr::new(
        10,
        200 + k as u8,
        (i / 250) as u8,
        (i % 250) as u8 + 1,
    ));
    Destination::new(addr, 8080, ForwardMethod::Masquerade, 1)
}

/// The table as changes for the crate.
fn changes(services: usize) -> Vec<Change> {
    let mut changes = Vec::with_capacity(services * (DESTS_PER_SERVICE + 1));
    for i in 0..services {
        let key = vip(i);
        changes.push(Change::AddService(Service::new(key, Scheduler::RoundRobin)));
        changes
            .extend((0..DESTS_PER_SERVICE).map(|k| Change::AddDestination(key, real_server(i, k))));
    }
    changes
}

/// The same table as `ipvsadm -R` input.
fn restore_script(services: usize) -> String {
    let mut s = String::new();
    for i in 0..services {
        let ServiceKey::Inet { addr, port, .. } = vip(i) else {
            unreachable!("address-based keys only")
        };
        s += &format!("-A -t {addr}:{port} -s rr\n");
        for k in 0..DESTS_PER_SERVICE {
            let d = real_server(i, k);
            s += &format!("-a -t {addr}:{port} -r {}:{} -m -w 1\n", d.addr, d.port);
        }
    }
    s
}

/// Times `f`, printing the phase as it ends (the VM is slow: show progress).
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    let d = t.elapsed();
    eprintln!("BENCH ipvs:   {what}: {:.3} s", d.as_secs_f64());
    (out, d)
}

fn namespace(tag: &str) -> (Netns, ipvs::Client) {
    let (ns, client) = fresh(tag);
    ns.sysctl("net.ipv4.vs.run_estimation", "0");
    (ns, client)
}

fn bench(services: usize) {
    let ipvsadm = testkit::tool("ipvsadm").display().to_string();
    let (ns_crate, mut c) = namespace("bench-crate");
    let (ns_tool, _) = namespace("bench-tool");
    let ops = services * (DESTS_PER_SERVICE + 1);
    eprintln!(
        "BENCH ipvs: {services} services x {DESTS_PER_SERVICE} real servers = {ops} operations"
    );

    let changes = changes(services);
    let (results, crate_apply) = timed("crate apply", || c.apply(&changes));
    let failed: Vec<String> = changes
        .iter()
        .zip(&results)
        .filter_map(|(ch, r)| r.as_ref().err().map(|e| format!("{ch}: {e}")))
        .take(5)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    let script = std::env::temp_dir().join("vmbench-ipvs-restore");
    std::fs::write(&script, restore_script(services)).expect("write restore script");
    let restore = format!("{ipvsadm} -R < {}", script.display());
    let ((), tool_apply) = timed("ipvsadm -R", || {
        ns_tool.run(&["/bin/sh", "-c", &restore]);
    });

    let (listed, crate_dump) = timed("crate list", || c.list().expect("list"));
    let dests: usize = listed.iter().map(|s| s.destinations.len()).sum();
    assert_eq!(
        (listed.len(), dests),
        (services, services * DESTS_PER_SERVICE)
    );

    let (saved, tool_dump) = timed("ipvsadm -Sn", || ns_tool.run(&[&ipvsadm, "-Sn"]));
    assert_eq!(saved.lines().count(), ops);
    // Both namespaces hold the same table.
    assert_eq!(ns_crate.run(&[&ipvsadm, "-Sn"]), saved);

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "BENCH ipvs: {services:>6} services, {ops:>6} ops | apply: crate {:8.3} s, ipvsadm -R {:8.3} s, ratio {:.3} \
         | dump: crate {:8.3} s, ipvsadm -Sn {:8.3} s, ratio {:.3}",
        crate_apply.as_secs_f64(),
        tool_apply.as_secs_f64(),
        ratio(crate_apply, tool_apply),
        crate_dump.as_secs_f64(),
        tool_dump.as_secs_f64(),
        ratio(crate_dump, tool_dump),
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_ipvs_bulk_apply_and_dump_vs_ipvsadm() {
    bench(1_000);
    bench(10_000);
}

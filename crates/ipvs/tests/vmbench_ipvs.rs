//! Benchmark (prints numbers, asserts no times): 10,000 services × 10 real
//! servers programmed from scratch with the crate's bulk apply and with
//! `ipvsadm -R`, each into its own freshly created namespace (no dest trash
//! from earlier deletions), then dumped with the crate and with
//! `ipvsadm -Sn`. Run with `tests/vm/run vmbench_`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::fresh;
use ipvs::{Change, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceKey};

const SERVICES: usize = 10_000;
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
fn changes() -> Vec<Change> {
    let mut changes = Vec::with_capacity(SERVICES * (DESTS_PER_SERVICE + 1));
    for i in 0..SERVICES {
        let key = vip(i);
        changes.push(Change::AddService(Service::new(key, Scheduler::RoundRobin)));
        changes
            .extend((0..DESTS_PER_SERVICE).map(|k| Change::AddDestination(key, real_server(i, k))));
    }
    changes
}

/// The same table as `ipvsadm -R` input.
fn restore_script() -> String {
    let mut s = String::new();
    for i in 0..SERVICES {
        let ServiceKey::Inet { addr, port, .. } = vip(i) else {
            unreachable!()
        };
        s += &format!("-A -t {addr}:{port} -s rr\n");
        for k in 0..DESTS_PER_SERVICE {
            let d = real_server(i, k);
            s += &format!("-a -t {addr}:{port} -r {}:{} -m -w 1\n", d.addr, d.port);
        }
    }
    s
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_ipvs_bulk_apply_and_dump_vs_ipvsadm() {
    let ipvsadm = testkit::tool("ipvsadm").display().to_string();
    let (ns_crate, mut c) = fresh("bench-crate");
    let (ns_tool, _) = fresh("bench-tool");
    let ops = SERVICES * (DESTS_PER_SERVICE + 1);

    let changes = changes();
    let t = Instant::now();
    let results = c.apply(&changes);
    let crate_apply = t.elapsed();
    let failed: Vec<String> = changes
        .iter()
        .zip(&results)
        .filter_map(|(ch, r)| r.as_ref().err().map(|e| format!("{ch}: {e}")))
        .take(5)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    let script = std::env::temp_dir().join("vmbench-ipvs-restore");
    std::fs::write(&script, restore_script()).unwrap();
    let t = Instant::now();
    ns_tool.run(&[
        "/bin/sh",
        "-c",
        &format!("{ipvsadm} -R < {}", script.display()),
    ]);
    let tool_apply = t.elapsed();

    let t = Instant::now();
    let listed = c.list().unwrap();
    let crate_dump = t.elapsed();
    let dests: usize = listed.iter().map(|s| s.destinations.len()).sum();
    assert_eq!(
        (listed.len(), dests),
        (SERVICES, SERVICES * DESTS_PER_SERVICE)
    );

    let t = Instant::now();
    let saved = ns_tool.run(&[&ipvsadm, "-Sn"]);
    let tool_dump = t.elapsed();
    assert_eq!(saved.lines().count(), ops);
    // Both namespaces hold the same table.
    assert_eq!(ns_crate.run(&[&ipvsadm, "-Sn"]), saved);

    println!(
        "BENCH ipvs: {SERVICES} services x {DESTS_PER_SERVICE} real servers = {ops} operations"
    );
    println!(
        "BENCH ipvs: apply  crate {:8.3} s   ipvsadm -R  {:8.3} s   ratio {:.3}",
        secs(crate_apply),
        secs(tool_apply),
        secs(crate_apply) / secs(tool_apply)
    );
    println!(
        "BENCH ipvs: dump   crate {:8.3} s   ipvsadm -Sn {:8.3} s   ratio {:.3}",
        secs(crate_dump),
        secs(tool_dump),
        secs(crate_dump) / secs(tool_dump)
    );
}

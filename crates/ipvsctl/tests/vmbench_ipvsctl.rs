//! Benchmark (prints numbers, asserts no times): `ipvsctl-rs restore` and
//! `save` against `ipvsadm -R` and `ipvsadm -Sn` in the same VM run, each
//! tool in a namespace of its own created for it: N services × 10 real
//! servers added; the N services edited (`ipvsctl-rs` reads the table
//! first, for a rollback); the N services edited back with a last line the
//! kernel refuses, a real server for a missing service (`ipvsctl-rs` sees
//! that in the table it read and applies nothing, `ipvsadm -R` applies
//! every line). Run with
//! `tests/vm/run vmbench_ipvsctl` (1,000 services, both address shapes)
//! and `tests/vm/run vmbench_10k_ipvsctl` (10,000, cluster IPs). Rate
//! estimation is off, as in `crates/ipvs/tests/vmbench_ipvs.rs`.

use std::time::{Duration, Instant};

use testkit::{Netns, modprobe, tool};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");
const DESTS_PER_SERVICE: usize = 10;

/// How the virtual addresses fall into the kernel's service hash table
/// (256 buckets keyed mostly by an IPv4 address's last byte).
#[derive(Clone, Copy)]
enum Shape {
    /// Cluster IPs `10.96.X.Y`, `Y` 1–250: spread over the buckets, as a
    /// cluster's are.
    ClusterIps,
    /// `10.X.Y.1`: every service in one bucket, so that each lookup the
    /// kernel makes walks them all (its worst case, whatever the tool).
    OneBucket,
}

impl Shape {
    fn vip(self, i: usize) -> String {
        match self {
            Shape::ClusterIps => format!("10.96.{}.{}:80", i / 250, i % 250 + 1),
            Shape::OneBucket => format!("10.{}.{}.1:80", 100 + i / 250, i % 250),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::ClusterIps => "cluster IPs",
            Shape::OneBucket => "one hash bucket",
        }
    }
}

/// The table as `ipvsadm -Sn` writes it.
fn additions(shape: Shape, services: usize) -> String {
    let mut s = String::new();
    for i in 0..services {
        let vip = shape.vip(i);
        s += &format!("-A -t {vip} -s rr\n");
        for k in 0..DESTS_PER_SERVICE {
            s += &format!(
                "-a -t {vip} -r 10.{}.{}.{}:8080 -m -w 1\n",
                200 + k,
                i / 250,
                i % 250 + 1
            );
        }
    }
    s
}

/// Every service given `scheduler`.
fn edits(shape: Shape, services: usize, scheduler: &str) -> String {
    (0..services)
        .map(|i| format!("-E -t {} -s {scheduler}\n", shape.vip(i)))
        .collect()
}

/// A real server for a service that does not exist (refused by the kernel).
const REFUSED: &str = "-a -t 10.99.99.99:80 -r 10.0.0.1:80 -m\n";

/// Runs a shell command in `ns`, timed; its exit status does not matter.
fn timed(ns: &Netns, what: &str, script: &str) -> Duration {
    let t = Instant::now();
    ns.try_run(&["/bin/sh", "-c", script]);
    let d = t.elapsed();
    eprintln!("BENCH ipvsctl:   {what}: {:.3} s", d.as_secs_f64());
    d
}

fn namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.sysctl("net.ipv4.vs.run_estimation", "0");
    ns
}

fn bench(shape: Shape, services: usize) {
    let ipvsadm = tool("ipvsadm").display().to_string();
    let (ours, theirs) = (namespace("bench-ours"), namespace("bench-ipvsadm"));
    let dir = std::env::temp_dir();
    let (adds, edit, back) = (
        dir.join("vmbench-adds"),
        dir.join("vmbench-edits"),
        dir.join("vmbench-edits-back"),
    );
    std::fs::write(&adds, additions(shape, services)).expect("write the additions");
    std::fs::write(&edit, edits(shape, services, "wrr")).expect("write the edits");
    std::fs::write(&back, edits(shape, services, "rr") + REFUSED).expect("write the edits");
    let ops = services * (DESTS_PER_SERVICE + 1);

    // The same arguments to both tools, each in its namespace.
    let both = |args: &str| {
        (
            timed(
                &ours,
                &format!("ipvsctl-rs {args}"),
                &format!("{BIN} {args}"),
            ),
            timed(
                &theirs,
                &format!("ipvsadm {args}"),
                &format!("{ipvsadm} {args}"),
            ),
        )
    };
    let restore = both(&format!("-R < {}", adds.display()));
    let save = both("-Sn > /dev/null");
    let saved = theirs.run(&[&ipvsadm, "-Sn"]);
    assert_eq!(saved.lines().count(), ops);
    assert_eq!(ours.run(&[BIN, "-Sn"]), saved, "both tables");

    let edits = both(&format!("-R < {}", edit.display()));
    let edited = theirs.run(&[&ipvsadm, "-Sn"]);
    assert_eq!(ours.run(&[&ipvsadm, "-Sn"]), edited, "both edited");

    let refused = both(&format!("-R < {}", back.display()));
    assert_eq!(ours.run(&[&ipvsadm, "-Sn"]), edited, "nothing applied");

    let row = |what: &str, (a, b): (Duration, Duration)| {
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        format!("{what} {a:.3} s / ipvsadm {b:.3} s = {:.3}", a / b)
    };
    println!(
        "BENCH ipvsctl: {services:>6} services ({}), {ops:>6} ops | {} | {} | {} | {}",
        shape.name(),
        row("restore", restore),
        row("save", save),
        row(&format!("{services} edits"), edits),
        row(&format!("{services} edits + refused line"), refused),
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_ipvsctl_restore_and_save_vs_ipvsadm() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wrr"]);
    bench(Shape::ClusterIps, 1_000);
    bench(Shape::OneBucket, 1_000);
}

/// 10,000 services: run it with a release build
/// (`KIPX_VM_PROFILE=release tests/vm/run vmbench_10k_ipvsctl`).
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_10k_ipvsctl_restore_and_save_vs_ipvsadm() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wrr"]);
    bench(Shape::ClusterIps, 10_000);
}

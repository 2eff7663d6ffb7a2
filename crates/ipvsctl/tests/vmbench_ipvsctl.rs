//! Benchmark (prints numbers, asserts no times): `ipvsctl-rs restore` and
//! `save` against `ipvsadm -R` and `ipvsadm -Sn` in the same VM run, one
//! tool after the other, each in a namespace of its own created for it and
//! flushed afterwards, so that the kernel holds one tool's table at a time
//! (see [`run`]): N services × 10 real servers added; saved, and
//! `/proc/net/ip_vs` read alone; the N services edited (`ipvsctl-rs` reads the table
//! first, for a rollback); the N services edited back with a last line the
//! kernel refuses, a real server for a missing service (`ipvsctl-rs` sees
//! that in the table it read and applies nothing, `ipvsadm -R` applies
//! every line). Run with
//! `tests/vm/run vmbench_ipvsctl` (1,000 services, both address shapes)
//! and `tests/vm/run vmbench_10k_ipvsctl` (10,000, cluster IPs). Rate
//! estimation is off, as in `crates/ipvs/tests/vmbench_ipvs.rs`.

use std::path::PathBuf;
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

/// The input files, shared by both tools.
struct Inputs {
    adds: PathBuf,
    edits: PathBuf,
    edits_back: PathBuf,
}

impl Inputs {
    fn write(shape: Shape, services: usize) -> Self {
        let dir = std::env::temp_dir();
        let inputs = Inputs {
            adds: dir.join("vmbench-adds"),
            edits: dir.join("vmbench-edits"),
            edits_back: dir.join("vmbench-edits-back"),
        };
        std::fs::write(&inputs.adds, additions(shape, services)).expect("write the additions");
        std::fs::write(&inputs.edits, edits(shape, services, "wrr")).expect("write the edits");
        std::fs::write(&inputs.edits_back, edits(shape, services, "rr") + REFUSED)
            .expect("write the edits");
        inputs
    }
}

/// One tool's times, and the tables it left (`ipvsadm -Sn`).
struct Run {
    restore: Duration,
    save: Duration,
    proc_file: Duration,
    edits: Duration,
    refused: Duration,
    saved: String,
    edited: String,
    after_refused: String,
}

/// The whole sequence of `name` (the program `program`) in a namespace
/// created for it, which is flushed and deleted afterwards: the kernel's
/// service table holds only this tool's services while it is timed. The table is one hash for all
/// namespaces on kernels up to 6.1 at least, so another namespace's
/// services lengthen every walk of it, and `/proc/net/ip_vs` skips
/// services at its read boundaries when another namespace has some
/// (`ip_vs_info_seq_next` counts every namespace's services,
/// `ip_vs_info_array` only its own).
fn run(name: &str, program: &str, inputs: &Inputs) -> Run {
    let ipvsadm = tool("ipvsadm").display().to_string();
    let ns = Netns::new("bench");
    ns.sysctl("net.ipv4.vs.run_estimation", "0");
    let step = |args: &str| timed(&ns, &format!("{name} {args}"), &format!("{program} {args}"));
    let table = || ns.run(&[&ipvsadm, "-Sn"]);
    let restore = step(&format!("-R < {}", inputs.adds.display()));
    let save = step("-Sn > /dev/null");
    let proc_file = timed(
        &ns,
        "cat /proc/net/ip_vs",
        "cat /proc/net/ip_vs > /dev/null",
    );
    let saved = table();
    let edits = step(&format!("-R < {}", inputs.edits.display()));
    let edited = table();
    let refused = step(&format!("-R < {}", inputs.edits_back.display()));
    let after_refused = table();
    ns.run(&[&ipvsadm, "-C"]);
    Run {
        restore,
        save,
        proc_file,
        edits,
        refused,
        saved,
        edited,
        after_refused,
    }
}

fn bench(shape: Shape, services: usize) {
    let inputs = Inputs::write(shape, services);
    let ops = services * (DESTS_PER_SERVICE + 1);
    let ours = run("ipvsctl-rs", BIN, &inputs);
    let theirs = run("ipvsadm", &tool("ipvsadm").display().to_string(), &inputs);
    assert_eq!(theirs.saved.lines().count(), ops);
    assert_eq!(ours.saved, theirs.saved, "both tables");
    assert_eq!(ours.edited, theirs.edited, "both edited");
    assert_eq!(ours.after_refused, ours.edited, "nothing applied");

    let row = |what: &str, a: Duration, b: Duration| {
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        format!("{what} {a:.3} s / ipvsadm {b:.3} s = {:.3}", a / b)
    };
    let file = |r: &Run| r.proc_file.as_secs_f64() / theirs.save.as_secs_f64();
    println!(
        "BENCH ipvsctl: {services:>6} services ({}), {ops:>6} ops | {} | {} | {} | {} | \
         cat /proc/net/ip_vs {:.3} s, {:.3} s = {:.3}, {:.3} of ipvsadm -Sn",
        shape.name(),
        row("restore", ours.restore, theirs.restore),
        row("save", ours.save, theirs.save),
        row(&format!("{services} edits"), ours.edits, theirs.edits),
        row(
            &format!("{services} edits + refused line"),
            ours.refused,
            theirs.refused
        ),
        ours.proc_file.as_secs_f64(),
        theirs.proc_file.as_secs_f64(),
        file(&ours),
        file(&theirs),
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

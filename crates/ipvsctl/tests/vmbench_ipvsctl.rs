//! Benchmark (prints numbers, asserts no times): `ipvsctl-rs restore` and
//! `save` against `ipvsadm -R` and `ipvsadm -Sn` in the same VM run, each
//! tool in a namespace of its own created for it: N services × 10 real
//! servers added; the N services edited (`ipvsctl-rs` reads the table
//! first, for a rollback); the N services edited back with a last line the
//! kernel refuses, a real server for a missing service (`ipvsctl-rs` sees
//! that in the table it read and applies nothing, `ipvsadm -R` applies
//! every line). Run with
//! `tests/vm/run vmbench_ipvsctl`. Rate estimation is off, as in
//! `crates/ipvs/tests/vmbench_ipvs.rs`.

use std::time::{Duration, Instant};

use testkit::{Netns, modprobe, tool};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");
const DESTS_PER_SERVICE: usize = 10;

fn vip(i: usize) -> String {
    format!("10.{}.{}.1:80", 100 + i / 250, i % 250)
}

/// The table as `ipvsadm -Sn` writes it.
fn additions(services: usize) -> String {
    let mut s = String::new();
    for i in 0..services {
        let vip = vip(i);
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
fn edits(services: usize, scheduler: &str) -> String {
    (0..services)
        .map(|i| format!("-E -t {} -s {scheduler}\n", vip(i)))
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

fn bench(services: usize) {
    let ipvsadm = tool("ipvsadm").display().to_string();
    let (ours, theirs) = (namespace("bench-ours"), namespace("bench-ipvsadm"));
    let dir = std::env::temp_dir();
    let (adds, edit, back) = (
        dir.join("vmbench-adds"),
        dir.join("vmbench-edits"),
        dir.join("vmbench-edits-back"),
    );
    std::fs::write(&adds, additions(services)).expect("write the additions");
    std::fs::write(&edit, edits(services, "wrr")).expect("write the edits");
    std::fs::write(&back, edits(services, "rr") + REFUSED).expect("write the edits");
    let ops = services * (DESTS_PER_SERVICE + 1);

    let r_ours = timed(
        &ours,
        "ipvsctl-rs -R",
        &format!("{BIN} -R < {}", adds.display()),
    );
    let r_theirs = timed(
        &theirs,
        "ipvsadm -R",
        &format!("{ipvsadm} -R < {}", adds.display()),
    );
    let s_ours = timed(&ours, "ipvsctl-rs -Sn", &format!("{BIN} -Sn > /dev/null"));
    let s_theirs = timed(
        &theirs,
        "ipvsadm -Sn",
        &format!("{ipvsadm} -Sn > /dev/null"),
    );
    let saved = theirs.run(&[&ipvsadm, "-Sn"]);
    assert_eq!(saved.lines().count(), ops);
    assert_eq!(ours.run(&[BIN, "-Sn"]), saved, "both tables");

    let e_ours = timed(
        &ours,
        "ipvsctl-rs -R (edits)",
        &format!("{BIN} -R < {}", edit.display()),
    );
    let e_theirs = timed(
        &theirs,
        "ipvsadm -R (edits)",
        &format!("{ipvsadm} -R < {}", edit.display()),
    );
    let edited = theirs.run(&[&ipvsadm, "-Sn"]);
    assert_eq!(ours.run(&[&ipvsadm, "-Sn"]), edited, "both edited");

    let u_ours = timed(
        &ours,
        "ipvsctl-rs -R (edits back, refused)",
        &format!("{BIN} -R < {}", back.display()),
    );
    let u_theirs = timed(
        &theirs,
        "ipvsadm -R (edits back, refused)",
        &format!("{ipvsadm} -R < {}", back.display()),
    );
    assert_eq!(ours.run(&[&ipvsadm, "-Sn"]), edited, "nothing applied");

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "BENCH ipvsctl: {services:>6} services, {ops:>6} ops | restore {:.3} s / ipvsadm -R {:.3} s = {:.3} \
         | save {:.3} s / ipvsadm -Sn {:.3} s = {:.3} \
         | {services} edits {:.3} s / ipvsadm -R {:.3} s = {:.3} \
         | {services} edits + refused line {:.3} s / ipvsadm -R {:.3} s = {:.3}",
        r_ours.as_secs_f64(),
        r_theirs.as_secs_f64(),
        ratio(r_ours, r_theirs),
        s_ours.as_secs_f64(),
        s_theirs.as_secs_f64(),
        ratio(s_ours, s_theirs),
        e_ours.as_secs_f64(),
        e_theirs.as_secs_f64(),
        ratio(e_ours, e_theirs),
        u_ours.as_secs_f64(),
        u_theirs.as_secs_f64(),
        ratio(u_ours, u_theirs),
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_ipvsctl_restore_and_save_vs_ipvsadm() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wrr"]);
    bench(1_000);
}

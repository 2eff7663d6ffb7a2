//! `ipvsctl-rs` against the real `ipvsadm`, in the test VM: the same table
//! must save and list identically, and restore must rebuild it.
//!
//! Each test works in its own network namespace (IPVS tables are per
//! namespace) and runs both tools there with `ip netns exec`.

use std::process::Output;

use testkit::{Netns, run, tool};

mod common;
use common::{BIN, ours, ours_ok};

const TABLE: &str = include_str!("../testdata/table.ipvsadm");

const MODULES: &[&str] = &[
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_mh",
    "ip_vs_pe_sip",
];

fn load_modules() {
    for m in MODULES {
        run(&["modprobe", m]);
    }
}

/// Runs the real ipvsadm with arguments split on blanks.
fn ipvsadm(ns: &Netns, line: &str) -> String {
    let argv: Vec<&str> = std::iter::once("ipvsadm")
        .chain(line.split_whitespace())
        .collect();
    ns.run(&argv)
}

/// Pipes `input` into a command inside the namespace.
fn with_stdin(ns: &Netns, cmd: &str, input: &str) -> Output {
    let file = std::env::temp_dir().join(format!("{}-stdin", ns.name()));
    std::fs::write(&file, input).expect("write the input file");
    ns.try_run(&["sh", "-c", &format!("{cmd} < {}", file.display())])
}

fn compare_everything(ns: &Netns) {
    let pairs = [
        ("-Sn", "save"),
        ("-Sn", "-Sn"),
        ("-Ln", "list"),
        ("-Ln", "-Ln"),
        ("-L -n --stats", "list --stats"),
        ("-Ln --rate", "-Ln --rate"),
        ("-Ln --stats --exact", "list --stats --exact"),
        ("-Ln --rate --exact", "-Ln --rate --exact"),
        ("-Ln --thresholds", "list --thresholds"),
        ("-Ln --persistent-conn", "list --persistent-conn"),
        ("-Ln --tun-info", "list --tun-info"),
        ("-Ln -t 10.96.0.1:443", "-Ln -t 10.96.0.1:443"),
        ("-Ln -f 7 -6", "list -f 7 -6"),
        ("-L --timeout", "-L --timeout"),
        ("-Lnc", "-Lnc"),
    ];
    for (theirs, mine) in pairs {
        let expected = ipvsadm(ns, theirs);
        let actual = ours_ok(ns, mine);
        println!("=== ipvsadm {theirs}\n{expected}=== end");
        assert_eq!(
            actual, expected,
            "ipvsctl-rs {mine} differs from ipvsadm {theirs}"
        );
    }
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_lists_and_saves_like_ipvsadm_and_restores() {
    load_modules();
    let ns = Netns::new("ctl");
    // ipvsadm -R takes no comments (the ipvsadm-restore script strips them).
    let rules: String = TABLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = with_stdin(&ns, &format!("{} -R", tool("ipvsadm").display()), &rules);
    let saved = ipvsadm(&ns, "-Sn");
    assert!(
        out.status.success() && saved.lines().count() > 30,
        "ipvsadm -R: {out:?}\nsaved:\n{saved}"
    );
    compare_everything(&ns);

    // JSON is valid and complete.
    let doc: serde_json::Value = serde_json::from_str(&ours_ok(&ns, "list --json")).unwrap();
    assert_eq!(
        doc["services"].as_array().unwrap().len(),
        saved.lines().filter(|l| l.starts_with("-A")).count()
    );

    // restore of ipvsadm -Sn output rebuilds the table.
    let copy = Netns::new("ctl-restored");
    let out = with_stdin(&copy, &format!("{BIN} restore"), &saved);
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ipvsadm(&copy, "-Sn"),
        saved,
        "restore did not reproduce the table"
    );

    // A bad line: reported with its number, nothing applied, exit 1.
    let bad = "-A -t 10.1.1.1:80 -s rr\n-a -t 10.1.1.1:80 -r 10.2.2.2 -w x\n";
    let out = with_stdin(&copy, &format!("{BIN} -R"), bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    assert_eq!(
        ipvsadm(&copy, "-Sn"),
        saved,
        "a bad restore changed the table"
    );

    // Edits through the ipvsadm-style command line, checked by ipvsadm.
    ours_ok(&copy, "-C");
    ours_ok(&copy, "-A -t 10.1.1.1:80 -s sh -b sh-port -p 60");
    ours_ok(&copy, "-a -t 10.1.1.1:80 -r 10.2.2.2:8080 -m -w 3 -x 9");
    ours_ok(&copy, "edit-server -t 10.1.1.1:80 -r 10.2.2.2:8080 -m -w 4");
    ours_ok(&copy, "--set 100 20 30");
    assert_eq!(
        ipvsadm(&copy, "-Sn"),
        "-A -t 10.1.1.1:80 -s sh -p 60 -b sh-port\n-a -t 10.1.1.1:80 -r 10.2.2.2:8080 -m -w 4\n"
    );
    assert_eq!(
        ipvsadm(&copy, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 100 20 30\n"
    );
    ours_ok(&copy, "-d -t 10.1.1.1:80 -r 10.2.2.2:8080");
    ours_ok(&copy, "-D -t 10.1.1.1:80");
    assert_eq!(ipvsadm(&copy, "-Sn"), "");

    // Usage errors exit 2; a missing service exits 1.
    assert_eq!(ours(&copy, "-L --bogus").status.code(), Some(2));
    assert_eq!(ours(&copy, "-A -t 10.1.1.1").status.code(), Some(2));
    assert_eq!(ours(&copy, "-Ln -t 10.9.9.9:1").status.code(), Some(1));
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_many_services_sort_like_ipvsadm() {
    load_modules();
    let ns = Netns::new("ctl-many");
    // Addresses on both sides of 2^31 and ports in every order: ipvsadm's
    // wrapping comparison decides the order.
    let mut rules = String::new();
    for i in 0..240u32 {
        let vip = match i % 3 {
            0 => format!("10.{}.{}.1", i % 7, i),
            1 => format!("192.168.{}.{}", i % 5, i),
            _ => format!("[2001:db8::{:x}]", 1000 - i),
        };
        let port = 1000 + (i * 7919) % 5000;
        let proto = if i % 2 == 0 { "-t" } else { "-u" };
        rules.push_str(&format!("-A {proto} {vip}:{port} -s rr\n"));
        for j in 0..3 {
            let rip = if vip.starts_with('[') {
                format!("[2001:db8:1::{:x}]", (i * 3 + j) % 17 + 1)
            } else {
                format!(
                    "{}.{}.{}.{}",
                    [10, 172, 200][j as usize],
                    i % 9,
                    j,
                    (i * 13) % 250 + 1
                )
            };
            rules.push_str(&format!(
                "-a {proto} {vip}:{port} -r {rip}:{} -m -w {j}\n",
                80 + j
            ));
        }
    }
    rules.push_str("-A -f 4000000 -s rr\n-A -f 3 -s rr\n-A -f 3 -6 -s rr\n");
    let timed = |f: &dyn Fn() -> Output| {
        let start = std::time::Instant::now();
        let out = f();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed().as_secs_f64()
    };
    let ours_restore = timed(&|| with_stdin(&ns, &format!("{BIN} restore"), &rules));
    assert_eq!(ipvsadm(&ns, "-Sn").lines().count(), rules.lines().count());
    for (theirs, mine) in [
        ("-Sn", "save"),
        ("-Ln", "list"),
        ("-Ln --stats", "list --stats"),
    ] {
        assert_eq!(ours_ok(&ns, mine), ipvsadm(&ns, theirs), "{mine}");
    }
    // The same restore by ipvsadm, for comparison (numbers, not asserts).
    let theirs_ns = Netns::new("ctl-many-ipvsadm");
    let ipvsadm_restore = timed(&|| {
        with_stdin(
            &theirs_ns,
            &format!("{} -R", tool("ipvsadm").display()),
            &rules,
        )
    });
    let ours_list = timed(&|| ours(&ns, "-Ln"));
    let ipvsadm_list = timed(&|| ns.try_run(&["ipvsadm", "-Ln"]));
    println!(
        "{} rules: restore ipvsctl-rs {ours_restore:.2}s, ipvsadm -R {ipvsadm_restore:.2}s \
         (ipvsctl-rs/ipvsadm {:.2}); -Ln ipvsctl-rs {ours_list:.2}s, ipvsadm {ipvsadm_list:.2}s \
         (ipvsctl-rs/ipvsadm {:.2})",
        rules.lines().count(),
        ours_restore / ipvsadm_restore,
        ours_list / ipvsadm_list
    );
}

/// While another namespace has services, the VM's kernel (6.1, one service
/// table for all namespaces) leaves some of this namespace's services out
/// of `/proc/net/ip_vs` (see `ipvs::read_overview`); save reads those with
/// netlink and still writes the whole table.
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_saves_every_service_while_another_namespace_has_services() {
    load_modules();
    let (ns, other) = (Netns::new("ctl-shared"), Netns::new("ctl-other"));
    let mut rules = String::new();
    for i in 0..300u32 {
        let vip = format!("10.96.{}.{}:80", i / 250, i % 250 + 1);
        rules.push_str(&format!("-A -t {vip} -s rr\n"));
        for k in 0..4 {
            rules.push_str(&format!(
                "-a -t {vip} -r 10.{}.{}.{}:8080 -m -w 1\n",
                200 + k,
                i / 250,
                i % 250 + 1
            ));
        }
    }
    let ipvsadm_restore = format!("{} -R", tool("ipvsadm").display());
    for n in [&ns, &other] {
        let out = with_stdin(n, &ipvsadm_restore, &rules);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shown = ns
        .run(&["sh", "-c", "cat /proc/net/ip_vs"])
        .lines()
        .filter(|l| l.starts_with("TCP"))
        .count();
    println!("/proc/net/ip_vs showed {shown} of the 300 services");
    let saved = ipvsadm(&ns, "-Sn");
    assert_eq!(saved.lines().count(), rules.lines().count());
    assert_eq!(ours_ok(&ns, "-Sn"), saved);
}

//! A real `ipvsctl-rs` session with traffic, in the test VM: a client
//! reaches a backend through an IPVS virtual server programmed with
//! `ipvsctl-rs`; the counters and connections it then shows must agree
//! with `ipvsadm`. The transcript is printed (docs/ipvsctl.md shows it).

use std::os::unix::process::CommandExt;
use std::time::Duration;

use testkit::{Netns, ThreeHosts, http_get, modprobe, serve_http};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");
const VIP: &str = "10.96.0.10";

/// Runs `ipvsctl-rs ARGS` (split on blanks) in `ns`, prints it and its
/// output as a shell transcript, and returns the output.
fn show(ns: &Netns, line: &str) -> String {
    let argv: Vec<&str> = std::iter::once(BIN)
        .chain(line.split_whitespace())
        .collect();
    let out = ns.try_run(&argv);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("# ipvsctl-rs {line}\n{text}");
    assert!(out.status.success(), "ipvsctl-rs {line}: {text}");
    text
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_session_with_traffic() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wlc", "dummy"]);
    let hosts = ThreeHosts::new();
    let node = &hosts.node;
    node.add_dummy("kube-ipvs0", &format!("{VIP}/32"));
    serve_http(&hosts.backend, 8080, "hello from the backend");

    println!("--- session start");
    show(node, &format!("-A -t {VIP}:80 -s rr"));
    show(
        node,
        &format!("add-server -t {VIP}:80 -r {}:8080 -m", ThreeHosts::BACKEND),
    );
    show(node, &format!("-A -u {VIP}:53 -s sh -b sh-fallback -p 300"));
    for _ in 0..3 {
        assert!(http_get(&hosts.client, VIP, 80).is_some_and(|r| r.contains("hello")));
    }
    // The kernel folds its per-CPU counters into what it reports every 2 s.
    let settled = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        node.run(&["ipvsadm", "-Ln", "--stats", "--exact"])
            .lines()
            .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(2) == Some("3"))
    });
    assert!(settled, "IPVS did not count the 3 connections");
    show(node, "-Ln");
    let stats = show(node, "list --stats --exact");
    assert_eq!(stats, node.run(&["ipvsadm", "-Ln", "--stats", "--exact"]));
    assert_eq!(show(node, "-Sn"), node.run(&["ipvsadm", "-Sn"]));
    // Connection entries count down their expiry between the two calls.
    let without_expiry = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split_whitespace().collect();
                if f.len() == 6 && f[1].contains(':') {
                    f.remove(1);
                }
                f.join(" ")
            })
            .collect()
    };
    let conns = show(node, "-Lnc");
    assert_eq!(
        without_expiry(&conns),
        without_expiry(&node.run(&["ipvsadm", "-Lnc"]))
    );
    assert_eq!(conns.lines().count(), 2 + 3, "{conns}");
    show(
        node,
        &format!("conns --real {}:8080 --json", ThreeHosts::BACKEND),
    );
    show(node, "list --proto udp");
    show(node, "list --json");
    show(node, "info");
    show(node, "timeouts --json");
    show(node, "watch --count 2 --interval 1");
    let bad = node.try_run(&[BIN, "-A", "-t", VIP]);
    println!(
        "# ipvsctl-rs -A -t {VIP}; echo $?\n{}{}",
        String::from_utf8_lossy(&bad.stderr),
        bad.status.code().unwrap_or(-1)
    );
    assert_eq!(bad.status.code(), Some(2));
    println!("--- session end");

    // Reading IPVS needs CAP_NET_ADMIN: as nobody, one line and exit 1.
    let nobody = std::process::Command::new(BIN)
        .arg("-Ln")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run ipvsctl-rs as nobody");
    let err = String::from_utf8_lossy(&nobody.stderr);
    assert_eq!(nobody.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied") && err.lines().count() == 1,
        "{err}"
    );
}

//! `kube-ipvs-proxy explain --live` in the VM: the daemon programs a Service in a "node"
//! namespace; `explain --live` finds the kernel as desired; then drift is made with the real
//! `ipvsadm` (and `ip`), and `explain --live` reports exactly that drift.

use std::path::Path;

use serde_json::{Value, json};
use testkit::daemon::{ClusterDir, Daemon, SlicePort};
use testkit::{Netns, modprobe};

const VIP: &str = "10.96.0.10";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// `explain default/web --live --output json` in `node`: its `kernel` field.
fn live(node: &Netns, cluster: &ClusterDir) -> Value {
    let dir = cluster.path().display().to_string();
    let out = node.run(&[
        &bin().display().to_string(),
        "explain",
        "default/web",
        "--from-dir",
        &dir,
        "--hostname-override",
        "node-1",
        "--live",
        "--output",
        "json",
    ]);
    let answer: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    answer["kernel"].clone()
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_explain_live_reports_exactly_the_drift_made_with_ipvsadm() {
    modprobe(&["ip_vs", "ip_vs_rr", "ip_vs_wlc", "dummy"]);
    let node = Netns::new("explain");
    let cluster = ClusterDir::new("explain");
    cluster.node("node-1", &["192.168.7.1"]);
    cluster.service(
        "web",
        &format!("{{clusterIP: {VIP}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}"),
    );
    cluster.local_endpoints(
        "web",
        &[SlicePort::tcp("http", 8080)],
        &["10.244.1.5", "10.244.1.6"],
    );
    // Its first sync programs the Service; the next periodic one, which would repair the
    // drift below, is an hour away.
    let daemon = Daemon::start(
        &node,
        bin(),
        &cluster,
        &["--ipvs-sync-period", "1h", "--ipvs-min-sync-period", "0s"],
    );
    daemon.synced("the virtual server", || {
        node.run(&["ipvsadm", "-Sn"])
            .contains(&format!("-a -t {VIP}:80 -r 10.244.1.6:8080 -m -w 1"))
    });
    assert_eq!(live(&node, &cluster), json!([]), "{}", daemon.log());

    let vs = format!("{VIP}:80");
    node.run(&["ipvsadm", "-E", "-t", &vs, "-s", "wlc"]);
    node.run(&[
        "ipvsadm",
        "-e",
        "-t",
        &vs,
        "-r",
        "10.244.1.5:8080",
        "-m",
        "-w",
        "3",
    ]);
    node.run(&["ipvsadm", "-d", "-t", &vs, "-r", "10.244.1.6:8080"]);
    node.run(&[
        "ipvsadm",
        "-a",
        "-t",
        &vs,
        "-r",
        "10.244.1.99:8080",
        "-m",
        "-w",
        "1",
    ]);
    let vs = format!("tcp {VIP}:80");
    assert_eq!(
        live(&node, &cluster),
        json!([
            {"kind": "virtualServerAttributes", "virtualServer": vs,
             "wanted": "-s rr", "kernel": "-s wlc"},
            {"kind": "realServerWeight", "virtualServer": vs,
             "realServer": "10.244.1.5:8080", "wanted": 1, "kernel": 3},
            {"kind": "missingRealServer", "virtualServer": vs,
             "realServer": "10.244.1.6:8080"},
            {"kind": "extraRealServer", "virtualServer": vs,
             "realServer": "10.244.1.99:8080", "weight": 1},
        ])
    );

    // The virtual server deleted, the VIP unbound: both said.
    node.run(&["ipvsadm", "-D", "-t", &format!("{VIP}:80")]);
    node.run(&[
        "ip",
        "addr",
        "del",
        &format!("{VIP}/32"),
        "dev",
        "kube-ipvs0",
    ]);
    assert_eq!(
        live(&node, &cluster),
        json!([
            {"kind": "missingVirtualServer", "virtualServer": vs},
            {"kind": "unboundAddress", "address": VIP},
        ])
    );
}

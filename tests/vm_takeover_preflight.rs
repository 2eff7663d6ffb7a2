//! The live pre-flight (`--dry-run --diff`) in the VM, on a node programmed as kube-proxy's
//! IPVS mode leaves it: `tests/fixtures/kube-proxy-node/`, written from kube-proxy's source
//! and tests (each file says where from), loaded with the real `ipvsadm -R`, `ipset restore`,
//! `iptables-restore`, `ip` and sysctls. The pre-flight must find nothing to change there,
//! list exactly the operations that undo a few changes made by hand, leave the kernel as it
//! was (compared with the real tools' own listings), and agree with what the daemon's first
//! sync then applies (on the unchanged node, nothing: `tests/vm_takeover.rs`).

use std::path::Path;

use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC};
use testkit::kube_proxy::{Preflight, cluster, kube_proxy_node};
use testkit::{Netns, ThreeHosts, modprobe};

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// What the node's kernel holds, as the real tools list it: `ipvsadm -Sn`, `kube-ipvs0`'s
/// addresses, `ipset save`, `iptables-save` (without its timestamps and counters) and the
/// IPVS-mode sysctls.
fn kernel_state(node: &Netns) -> String {
    let saved = node.run(&["iptables-save"]);
    let rules: String = saved
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.strip_suffix(" [0:0]") {
            Some(chain) if l.starts_with(':') => format!("{chain}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let sysctls = node.sh(
        "cat /proc/sys/net/ipv4/vs/conntrack /proc/sys/net/ipv4/vs/expire_nodest_conn \
         /proc/sys/net/ipv4/vs/expire_quiescent_template /proc/sys/net/ipv4/ip_forward",
    );
    [
        node.run(&["ipvsadm", "-Sn"]),
        node.run(&["ip", "-o", "addr", "show", "dev", "kube-ipvs0"]),
        node.run(&["ipset", "save"]),
        rules,
        sysctls,
    ]
    .join("\n")
}

/// The pre-flight's exit code (never 2: an error fails the test) and output.
fn preflight(node: &Netns, cluster: &ClusterDir) -> (Option<i32>, String) {
    let Preflight {
        code,
        stdout,
        stderr,
    } = testkit::kube_proxy::preflight(node, bin(), cluster);
    assert_ne!(code, Some(2), "the pre-flight failed: {stderr}");
    (code, stdout)
}

/// The three hosts, the node programmed by kube-proxy.
fn kube_proxy_hosts() -> ThreeHosts {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    kube_proxy_node(&hosts.node);
    hosts
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_preflight_on_a_kube_proxy_node_finds_nothing_to_change() {
    let hosts = kube_proxy_hosts();
    let cluster = cluster("preflight-same");
    let before = kernel_state(&hosts.node);

    let (code, out) = preflight(&hosts.node, &cluster);

    assert_eq!(out, "", "operations on kube-proxy's own state");
    assert_eq!(code, Some(0));
    assert_eq!(
        kernel_state(&hosts.node),
        before,
        "the pre-flight changed the node"
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_preflight_lists_exactly_the_operations_that_undo_changes_by_hand() {
    let hosts = kube_proxy_hosts();
    let node = &hosts.node;
    // A stale real server, a missing VIP, an extra ipset entry and a changed rule.
    node.run(&[
        "ipvsadm",
        "-a",
        "-t",
        "10.96.0.10:80",
        "-r",
        "10.244.1.7:8080",
        "-m",
        "-w",
        "1",
    ]);
    node.run(&["ip", "addr", "del", "10.96.0.53/32", "dev", "kube-ipvs0"]);
    node.run(&["ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.99,tcp:80"]);
    node.run(&[
        "iptables",
        "-t",
        "nat",
        "-R",
        "KUBE-LOAD-BALANCER",
        "2",
        "-j",
        "RETURN",
    ]);
    let cluster = cluster("preflight-diff");
    let before = kernel_state(node);

    let (code, out) = preflight(node, &cluster);
    assert_eq!(
        out,
        "# ipvsadm\n\
         -d -t 10.96.0.10:80 -r 10.244.1.7:8080\n\
         # ip\n\
         ip address add 10.96.0.53/32 dev kube-ipvs0\n\
         # ipset restore\n\
         del KUBE-CLUSTER-IP 10.96.0.99,tcp:80\n\
         # iptables-restore --noflush\n\
         *nat\n\
         :KUBE-LOAD-BALANCER - [0:0]\n\
         -A KUBE-LOAD-BALANCER -m comment --comment \"Kubernetes service load balancer ip + port \
         with externalTrafficPolicy=local\" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN\n\
         -A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n\
         COMMIT\n"
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        kernel_state(node),
        before,
        "the pre-flight changed the node"
    );

    // The daemon's first sync applies exactly those four operations.
    let daemon = Daemon::start(node, bin(), &cluster, QUICK_SYNC);
    daemon.eventually("a sync", || daemon.syncs() >= 1);
    let first = &daemon.sync_summaries()[0];
    assert!(
        first.contains(
            "applied={\"address\": 1, \"ipset_entry\": 1, \"iptables_chain\": 1, \
             \"real_server\": 1} failed={}"
        ),
        "{first}"
    );
}

//! The live pre-flight (`--dry-run --diff`) in the VM, on a node programmed as kube-proxy's
//! IPVS mode leaves it: `tests/fixtures/kube-proxy-node/`, written from kube-proxy's source
//! and tests (each file says where from), loaded with the real `ipvsadm -R`, `ipset restore`,
//! `iptables-restore`, `ip` and sysctls. The pre-flight must find nothing to change there,
//! list exactly the operations that undo a few changes made by hand, leave the kernel as it
//! was (compared with the real tools' own listings), and agree with what the daemon's first
//! sync then applies.

use std::path::Path;

use testkit::daemon::{ClusterDir, Daemon, NODE_NAME, QUICK_SYNC};
use testkit::{Netns, ThreeHosts, modprobe};

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// A fixture file without its comment lines.
fn fixture(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
}

/// Feeds `text` (comments removed) to `tool` on its standard input, in `node`.
fn restore(node: &Netns, tool: &str, args: &str, name: &str, text: &str) {
    let file = std::env::temp_dir().join(format!("{}-kube-proxy.{name}", node.name()));
    let body: String = fixture(text).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, body).expect("write the fixture");
    node.sh(&format!(
        "{} {args} < {}",
        testkit::tool(tool).display(),
        file.display()
    ));
}

/// Programs `node` as kube-proxy leaves it for the Services of [`cluster`].
fn kube_proxy_node(node: &Netns) {
    for line in fixture(include_str!("fixtures/kube-proxy-node/sysctls")) {
        let (key, value) = line.split_once('=').expect("KEY=VALUE");
        node.sysctl(key, value);
    }
    restore(
        node,
        "ipvsadm",
        "-R",
        "ipvs",
        include_str!("fixtures/kube-proxy-node/ipvsadm.rules"),
    );
    node.run(&["ip", "link", "add", "kube-ipvs0", "type", "dummy"]);
    for address in fixture(include_str!("fixtures/kube-proxy-node/addresses")) {
        node.run(&["ip", "addr", "add", address, "dev", "kube-ipvs0"]);
    }
    restore(
        node,
        "ipset",
        "restore",
        "ipset",
        include_str!("fixtures/kube-proxy-node/ipset.restore"),
    );
    restore(
        node,
        "iptables-restore",
        "--noflush",
        "iptables",
        include_str!("fixtures/kube-proxy-node/iptables.restore"),
    );
    let iptables = testkit::tool("iptables");
    for jump in fixture(include_str!("fixtures/kube-proxy-node/jumps")) {
        node.sh(&format!("{} {jump}", iptables.display()));
    }
}

/// The cluster of the fixture (its README): Services `web`, `np`, `lb` and `dns`, each with
/// the one endpoint 10.244.1.5 on this node.
fn cluster(tag: &str) -> ClusterDir {
    let cluster = ClusterDir::for_node(tag, &[ThreeHosts::NODE]);
    cluster.write(
        "services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
         spec: {type: ClusterIP, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: np, namespace: default}\n\
         spec: {type: NodePort, clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: default}\n\
         spec: {type: LoadBalancer, clusterIP: 10.96.0.30, externalTrafficPolicy: Local, \
         healthCheckNodePort: 32000, loadBalancerSourceRanges: [192.168.7.0/24], \
         ports: [{name: https, port: 443, targetPort: 8443, nodePort: 30443}]}\n\
         status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: default}\n\
         spec: {type: ClusterIP, clusterIP: 10.96.0.53, ports: [{name: dns, port: 53, targetPort: 5353, protocol: UDP}]}\n",
    );
    for (service, port, target, protocol) in [
        ("web", "http", 8080, "TCP"),
        ("np", "http", 8080, "TCP"),
        ("lb", "https", 8443, "TCP"),
        ("dns", "dns", 5353, "UDP"),
    ] {
        let ports = [testkit::daemon::SlicePort {
            name: port,
            port: target,
            protocol,
        }];
        cluster.local_endpoints(service, &ports, &[ThreeHosts::BACKEND]);
    }
    cluster
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

/// Runs the pre-flight in `node` against `cluster`: its exit code and standard output.
fn preflight(node: &Netns, cluster: &ClusterDir) -> (Option<i32>, String) {
    let out = node.try_run(&[
        &bin().display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        NODE_NAME,
        "--dry-run",
        "--diff",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() != Some(2),
        "the pre-flight failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), stdout)
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

    // The daemon's takeover agrees: its syncs apply nothing.
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.eventually("two syncs", || daemon.syncs() >= 2);
    for summary in daemon.sync_summaries() {
        assert!(
            summary.contains("applied={} failed={}"),
            "a sync changed something: {summary}"
        );
    }
    assert_eq!(
        kernel_state(&hosts.node),
        before,
        "the takeover changed the node"
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
         -e -t 10.96.0.10:80 -r 10.244.1.7:8080 -m -w 0\n\
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

//! The daemon end to end in the VM: `kube-ipvs-proxy --from-dir` runs in a
//! "node" namespace, programs IPVS and `kube-ipvs0`, and real connections from
//! a client namespace reach a backend namespace. Covers endpoint changes,
//! drift made by hand, and a restart with a connection open.

use std::path::Path;

use testkit::daemon::{ClusterDir, Daemon, SlicePort};
use testkit::{EchoConn, Netns, ThreeHosts, http_get, modprobe, serve_http};

const VIP: &str = "10.96.0.10";

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// A cluster with one Node and Service `default/web` (http 80→8080, echo 7→7007).
fn cluster() -> ClusterDir {
    let cluster = ClusterDir::new("e2e");
    cluster.node("node-1", &["192.168.7.1"]);
    cluster.write(
        "service.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  clusterIP: {VIP}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n\
             \x20 - {{name: echo, port: 7, targetPort: 7007}}\n"
        ),
    );
    cluster
}

/// Replaces the Service's endpoints (all on node-1).
fn endpoints(cluster: &ClusterDir, addresses: &[&str]) {
    let endpoints: Vec<(&str, &str)> = addresses.iter().map(|a| (*a, "node-1")).collect();
    cluster.endpoints(
        "web",
        &[SlicePort::tcp("http", 8080), SlicePort::tcp("echo", 7007)],
        &endpoints,
    );
}

fn saved(node: &Netns) -> String {
    node.run(&["ipvsadm", "-Sn"])
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_daemon_proxies_a_cluster_ip_and_keeps_connections_across_changes_and_restarts() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let (node, backend, client) = (&hosts.node, &hosts.backend, &hosts.client);
    // A second backend on the same pod network.
    backend.run(&["ip", "addr", "add", "10.244.1.6/24", "dev", "eth0"]);
    serve_http(backend, 8080, "hello from the backend");
    let bb = testkit::busybox().display().to_string();
    backend.spawn(&[&bb, "nc", "-ll", "-p", "7007", "-e", "cat"]);

    let cluster = cluster();
    endpoints(&cluster, &[ThreeHosts::BACKEND]);
    let mut daemon = Daemon::start(
        node,
        bin(),
        &cluster,
        &["--ipvs-sync-period", "3s", "--ipvs-min-sync-period", "0s"],
    );

    daemon.eventually("the virtual servers", || {
        saved(node).contains(&format!("-a -t {VIP}:80 -r 10.244.1.5:8080 -m -w 1"))
    });
    let addrs = node.run(&["ip", "-o", "addr", "show", "dev", "kube-ipvs0"]);
    assert!(
        addrs.contains(&format!("{VIP}/32")),
        "VIP not bound:\n{addrs}"
    );
    let reply = http_get(client, VIP, 80).expect("no reply through the daemon's virtual server");
    assert!(reply.contains("hello from the backend"), "{reply}");

    // A long-lived connection through the echo port, kept open throughout.
    let mut conn = EchoConn::open(client, VIP, 7);
    let mut echo = |msg: &str| conn.check(msg);
    echo("before\n");

    // An endpoint added: both real servers, the connection untouched.
    endpoints(&cluster, &[ThreeHosts::BACKEND, "10.244.1.6"]);
    daemon.eventually("the second real server", || {
        saved(node).contains("-r 10.244.1.6:8080")
    });
    echo("after an endpoint was added\n");

    // Drift by hand: the HTTP virtual server deleted, an address removed.
    node.run(&["ipvsadm", "-D", "-t", &format!("{VIP}:80")]);
    daemon.eventually("the deleted virtual server to be repaired", || {
        saved(node).contains(&format!("-A -t {VIP}:80"))
    });
    // The sync counts it once all its parts (ipsets, iptables) are done too.
    daemon.eventually("the repair to be counted", || {
        daemon
            .metrics()
            .contains("kube_ipvs_proxy_drift_repaired_total{kind=\"virtual_server\"}")
    });
    // Drift a periodic sync finds through its survey (the overview and
    // the service dump): an extra real server, another weight, another
    // scheduler, each on a virtual server no change touches.
    let vs = format!("{VIP}:80");
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
    node.run(&[
        "ipvsadm",
        "-e",
        "-t",
        &vs,
        "-r",
        "10.244.1.6:8080",
        "-m",
        "-w",
        "5",
    ]);
    node.run(&["ipvsadm", "-E", "-t", &vs, "-s", "wlc"]);
    daemon.eventually("the real servers and the scheduler to be repaired", || {
        let table = saved(node);
        !table.contains("10.244.1.99")
            && table.contains(&format!("-a -t {vs} -r 10.244.1.6:8080 -m -w 1"))
            && table.contains(&format!("-A -t {vs} -s rr"))
    });
    daemon.eventually("the real server repairs to be counted", || {
        daemon
            .metrics()
            .contains("kube_ipvs_proxy_drift_repaired_total{kind=\"real_server\"}")
    });
    let metrics = daemon.metrics();
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds"),
        "{metrics}"
    );
    let health = daemon.healthz();
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");

    // Restart: the daemon stops (SIGTERM) and starts again; nothing is flushed.
    daemon.stop();
    let before = saved(node);
    echo("while the daemon is down\n");
    let syncs = daemon.syncs();
    daemon.restart();
    daemon.eventually("a sync after the restart", || daemon.syncs() > syncs);
    assert_eq!(saved(node), before, "the restart changed the table");
    echo("after the restart\n");

    // The endpoint that serves our connection leaves: it drains (weight 0),
    // the open connection still works.
    endpoints(&cluster, &["10.244.1.6"]);
    daemon.eventually("the leaving real server to drain", || {
        saved(node).contains(&format!("-a -t {VIP}:7 -r 10.244.1.5:7007 -m -w 0"))
    });
    echo("while draining\n");
}

//! The daemon end to end in the VM: `kube-ipvs-proxy --from-dir` runs in a
//! "node" namespace, programs IPVS and `kube-ipvs0`, and real connections from
//! a client namespace reach a backend namespace. Covers endpoint changes,
//! drift made by hand, and a restart with a connection open.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::{Netns, ThreeHosts, http_get, modprobe, serve_http};

const VIP: &str = "10.96.0.10";

/// A directory source holding a Node, one Service and its EndpointSlice.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kipx-cluster-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        std::fs::write(
            dir.join("node.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n\
             status:\n  addresses:\n  - {type: InternalIP, address: 192.168.7.1}\n",
        )
        .expect("write the node");
        std::fs::write(
            dir.join("service.yaml"),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
                 spec:\n  clusterIP: {VIP}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n\
                 \x20 - {{name: echo, port: 7, targetPort: 7007}}\n"
            ),
        )
        .expect("write the service");
        Cluster { dir }
    }

    /// Replaces the Service's endpoints.
    fn endpoints(&self, addresses: &[&str]) {
        let list: Vec<String> = addresses
            .iter()
            .map(|a| format!("- addresses: [{a}]\n  nodeName: node-1\n"))
            .collect();
        let yaml = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: web-1\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\n\
             addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\n\
             - {{name: echo, port: 7007, protocol: TCP}}\nendpoints:\n{}",
            list.concat()
        );
        // Write then rename, so the daemon never reads half a file.
        let tmp = self.dir.join(".slice.tmp");
        std::fs::write(&tmp, yaml).expect("write the slice");
        std::fs::rename(&tmp, self.dir.join("slice.yaml")).expect("move the slice");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the daemon in the node namespace with a short sync period; its log
/// goes to `log`.
fn start_daemon(node: &Netns, cluster: &Path, log: &Path) -> u32 {
    let bin = env!("CARGO_BIN_EXE_kube-ipvs-proxy");
    let script = format!(
        "exec {bin} --from-dir {} --hostname-override node-1 --ipvs-sync-period 3s \
         --ipvs-min-sync-period 0s >>{} 2>&1",
        cluster.display(),
        log.display()
    );
    node.spawn(&["sh", "-c", &script])
}

/// Waits until `check` holds, or fails with the daemon's log.
fn eventually(what: &str, log: &Path, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("timed out waiting for {what}; daemon log:\n{log}");
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

    let cluster = Cluster::new("e2e");
    cluster.endpoints(&[ThreeHosts::BACKEND]);
    let log = std::env::temp_dir().join(format!("kipx-daemon-{}.log", std::process::id()));
    let first = start_daemon(node, &cluster.dir, &log);

    eventually("the virtual servers", &log, || {
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
    let mut conn = client
        .enter(|| std::net::TcpStream::connect((VIP, 7)).expect("connect to the echo service"));
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut echo = |msg: &str| {
        conn.write_all(msg.as_bytes())
            .expect("send on the long-lived connection");
        let mut buf = vec![0; msg.len()];
        conn.read_exact(&mut buf)
            .expect("the long-lived connection broke");
        assert_eq!(String::from_utf8_lossy(&buf), msg);
    };
    echo("before\n");

    // An endpoint added: both real servers, the connection untouched.
    cluster.endpoints(&[ThreeHosts::BACKEND, "10.244.1.6"]);
    eventually("the second real server", &log, || {
        saved(node).contains("-r 10.244.1.6:8080")
    });
    echo("after an endpoint was added\n");

    // Drift by hand: the HTTP virtual server deleted, an address removed.
    node.run(&["ipvsadm", "-D", "-t", &format!("{VIP}:80")]);
    eventually("the deleted virtual server to be repaired", &log, || {
        saved(node).contains(&format!("-A -t {VIP}:80"))
    });
    let metrics = node.run(&[
        "sh",
        "-c",
        &format!("printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' | {bb} nc 127.0.0.1 10249"),
    ]);
    assert!(
        metrics.contains("kube_ipvs_proxy_drift_repaired_total{kind=\"virtual_server\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds"),
        "{metrics}"
    );
    let health = node.run(&[
        "sh",
        "-c",
        &format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | {bb} nc 127.0.0.1 10256"),
    ]);
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");

    // Restart: the daemon stops (SIGTERM) and starts again; nothing is flushed.
    testkit::sh(&format!("kill -TERM {first}"));
    std::thread::sleep(Duration::from_secs(1));
    let before = saved(node);
    echo("while the daemon is down\n");
    start_daemon(node, &cluster.dir, &log);
    eventually("a sync after the restart", &log, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.rsplit("IPVS dataplane ready")
            .next()
            .is_some_and(|after| after.contains("sync done"))
            && text.matches("IPVS dataplane ready").count() == 2
    });
    assert_eq!(saved(node), before, "the restart changed the table");
    echo("after the restart\n");

    // The endpoint that serves our connection leaves: it drains (weight 0),
    // the open connection still works.
    cluster.endpoints(&["10.244.1.6"]);
    eventually("the leaving real server to drain", &log, || {
        saved(node).contains(&format!("-a -t {VIP}:7 -r 10.244.1.5:7007 -m -w 0"))
    });
    echo("while draining\n");
}

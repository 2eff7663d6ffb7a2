//! Takeover, restart, rolling update and drift repair under continuous traffic, in the VM,
//! on a node programmed as kube-proxy's IPVS mode leaves it
//! (`tests/fixtures/kube-proxy-node/`, from kube-proxy's source and tests).
//!
//! From the client namespace ([`testkit::load`]): a new TCP connection every 200 ms to the
//! ClusterIP of `web`, the NodePort of `np` and the LoadBalancer IP of `lb`, a UDP request
//! every 200 ms to the ClusterIP of `dns`, and long-lived TCP connections to `web` and `np`
//! exchanging a line every second. Phases:
//!
//! 1. kube-proxy's state alone (and the pre-flight: nothing to change);
//! 2. takeover: the daemon starts, until two syncs are done;
//! 3. steady: two more periodic syncs;
//! 4. restart: SIGTERM, start again, two syncs;
//! 5. rolling update of `lb`'s Deployment, as Kubernetes does it: the new Pod ready; the old
//!    one `ready: false, serving: true, terminating: true`; the old one removed from the
//!    slice; only then its process stops;
//! 6. drift: a virtual server deleted and an ipset flushed by hand, repaired by the next
//!    periodic sync.
//!
//! Per phase it prints requests sent and failed, long-lived exchanges and broken
//! connections, and the kernel operations the daemon's syncs applied (its sync lines).
//! Every phase must have no failed request and no broken connection, and the takeover
//! must apply no operation at all (kube-proxy's state is already ours).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use testkit::daemon::{ClusterDir, Daemon, NODE_NAME, QUICK_SYNC};
use testkit::kube_proxy::{cluster, kube_proxy_node};
use testkit::load::{EchoServer, Load, PhaseCounts, Target};
use testkit::{ThreeHosts, UdpResponder, modprobe};

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// `lb`'s new Pod.
const NEW_POD: &str = "10.244.1.6";

/// Writes `lb`'s EndpointSlice with these endpoints: (address, ready, serving, terminating).
fn lb_slice(cluster: &ClusterDir, endpoints: &[(&str, bool, bool, bool)]) {
    let endpoints: String = endpoints
        .iter()
        .map(|(address, ready, serving, terminating)| {
            format!(
                "- addresses: [\"{address}\"]\n  nodeName: {NODE_NAME}\n  \
                 conditions: {{ready: {ready}, serving: {serving}, terminating: {terminating}}}\n"
            )
        })
        .collect();
    cluster.write(
        "slice-lb.yaml",
        &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: lb-1\n  namespace: default\n\
             \x20 labels: {{kubernetes.io/service-name: lb}}\n\
             addressType: IPv4\nports:\n- {{name: https, port: 8443, protocol: TCP}}\n\
             endpoints:\n{endpoints}"
        ),
    );
}

/// One phase's row: its name, the traffic counts, and the operations the daemon applied.
struct Row {
    name: &'static str,
    ops: u64,
}

/// The daemon's operations applied so far, over every sync it logged (across restarts).
fn ops_so_far(daemon: Option<&Daemon<'_>>) -> u64 {
    daemon.map_or(0, |d| d.sync_lines().iter().map(|l| l.ops()).sum())
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_takeover_restart_and_rolling_update_under_continuous_load() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    hosts.add_backend(NEW_POD);
    let node = &hosts.node;
    kube_proxy_node(node);
    let cluster = cluster("takeover-load");
    let web = EchoServer::start(&hosts.backend, addr("10.244.1.5:8080"));
    let old_lb = EchoServer::start(&hosts.backend, addr("10.244.1.5:8443"));
    let new_lb = EchoServer::start(&hosts.backend, addr(&format!("{NEW_POD}:8443")));
    let _dns = UdpResponder::answering_name(&hosts.backend, ThreeHosts::BACKEND, 5353);

    let load = Load::start(
        &hosts.client,
        &[
            Target::Tcp(addr("10.96.0.10:80")),
            Target::Tcp(addr("192.168.7.1:30080")),
            Target::Tcp(addr("203.0.113.7:443")),
            Target::Udp(addr("10.96.0.53:53")),
        ],
        &[addr("10.96.0.10:80"), addr("192.168.7.1:30080")],
        Duration::from_millis(200),
    );
    let mut rows = Vec::new();
    let mut done = 0;
    let mut phase = |name: &'static str, daemon: Option<&Daemon<'_>>, rows: &mut Vec<Row>| {
        let ops = ops_so_far(daemon);
        rows.push(Row {
            name,
            ops: ops - done,
        });
        done = ops;
        load.next_phase();
    };

    // 1. kube-proxy alone; the pre-flight finds nothing to change.
    let preflight = testkit::kube_proxy::preflight(node, bin(), &cluster);
    assert_eq!(
        (preflight.code, preflight.stdout.as_str()),
        (Some(0), ""),
        "{}",
        preflight.stderr
    );
    std::thread::sleep(Duration::from_secs(6));
    phase("kube-proxy's state alone", None, &mut rows);

    // 2. Takeover.
    let mut daemon = Daemon::start(node, bin(), &cluster, QUICK_SYNC);
    daemon.eventually("two syncs", || daemon.syncs() >= 2);
    phase("takeover (start, two syncs)", Some(&daemon), &mut rows);

    // 3. Steady.
    daemon.next_sync();
    phase("steady (two periodic syncs)", Some(&daemon), &mut rows);

    // 4. Restart.
    let before = daemon.syncs();
    daemon.restart();
    daemon.eventually("two syncs after the restart", || {
        daemon.syncs() >= before + 2
    });
    phase(
        "restart (SIGTERM, start, two syncs)",
        Some(&daemon),
        &mut rows,
    );

    // 5. Rolling update of lb: new Pod ready; old one terminating; old one gone; its
    //    process stops.
    let old = ThreeHosts::BACKEND;
    lb_slice(
        &cluster,
        &[(old, true, true, false), (NEW_POD, true, true, false)],
    );
    daemon.next_sync();
    lb_slice(
        &cluster,
        &[(old, false, true, true), (NEW_POD, true, true, false)],
    );
    daemon.next_sync();
    lb_slice(&cluster, &[(NEW_POD, true, true, false)]);
    daemon.next_sync();
    drop(old_lb);
    daemon.next_sync();
    phase("rolling update of lb", Some(&daemon), &mut rows);

    // 6. Drift: a virtual server deleted (np's NodePort on the node's second address) and
    //    the hairpin set flushed, repaired by the next periodic sync.
    node.run(&["ipvsadm", "-D", "-t", "10.244.1.1:30080"]);
    node.run(&["ipset", "flush", "KUBE-LOOP-BACK"]);
    daemon.eventually("the drift repaired", || {
        node.try_run(&["ipvsadm", "-Ln", "-t", "10.244.1.1:30080"])
            .status
            .success()
            && node
                .run(&["ipset", "list", "KUBE-LOOP-BACK"])
                .contains("10.244.1.5,tcp:8080,10.244.1.5")
    });
    daemon.next_sync();
    phase(
        "drift (a virtual server, an ipset) repaired",
        Some(&daemon),
        &mut rows,
    );

    let counts = load.stop();
    drop((web, new_lb));
    print_table(&rows, &counts);
    for (row, c) in rows.iter().zip(&counts) {
        assert_eq!(
            c.failed, 0,
            "failed requests in phase {:?}: {c:?}",
            row.name
        );
        assert_eq!(
            c.broken, 0,
            "broken connections in phase {:?}: {c:?}",
            row.name
        );
        assert!(
            c.sent > 0 && c.exchanges > 0,
            "no traffic in {:?}",
            row.name
        );
    }
    assert_eq!(rows[1].ops, 0, "the takeover changed kube-proxy's state");
    assert!(
        rows[4].ops > 0 && rows[5].ops > 0,
        "{:?}",
        rows.iter().map(|r| r.ops).collect::<Vec<_>>()
    );
}

/// The per-phase table, as `docs/migration.md` quotes it.
fn print_table(rows: &[Row], counts: &[PhaseCounts]) {
    println!(
        "| phase | requests sent | failed | long-lived exchanges | broken | kernel operations |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (row, c) in rows.iter().zip(counts) {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.name, c.sent, c.failed, c.exchanges, c.broken, row.ops
        );
    }
}

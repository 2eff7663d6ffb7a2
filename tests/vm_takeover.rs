//! Taking over a node from kube-proxy in IPVS mode, in the VM, with a connection open
//! through it: the node is programmed from `tests/fixtures/kube-proxy-node/` (kube-proxy's
//! IPVS table, `kube-ipvs0`, ipsets, iptables chains and sysctls for four Services, written
//! from kube-proxy's source and tests), and the daemon starts on it.

use std::collections::BTreeSet;
use std::path::Path;

use testkit::cluster::Synthetic;
use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC, SlicePort};
use testkit::kube_proxy::{cluster, kube_proxy_node};
use testkit::load::EchoServer;
use testkit::{EchoConn, Netns, ThreeHosts, ipvs_table, modprobe};

/// Service `web`'s ClusterIP.
const VIP: &str = "10.96.0.10";
/// An endpoint of `web` kube-proxy did not program yet.
const MISSING: &str = "10.244.1.6";
/// An endpoint kube-proxy still has that is gone from the cluster.
const STALE: &str = "10.244.1.7";

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// The IPVS table as a set of lines, to compare whatever the listing order.
fn table_lines(node: &Netns) -> BTreeSet<String> {
    ipvs_table(node).lines().map(str::to_owned).collect()
}

/// The three hosts, the node programmed by kube-proxy, and an echo connection open through
/// `web`'s ClusterIP to its backend.
fn node_with_open_connection() -> (ThreeHosts, EchoServer, EchoConn) {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    kube_proxy_node(&hosts.node);
    let server = EchoServer::start(
        &hosts.backend,
        format!("{}:8080", ThreeHosts::BACKEND)
            .parse()
            .expect("an address"),
    );
    let mut conn = EchoConn::open(&hosts.client, VIP, 80);
    conn.check("through kube-proxy's table\n");
    (hosts, server, conn)
}

/// No operation of any kind counted in the daemon's metrics.
fn no_operations_but(daemon: &Daemon<'_>, except: &[&str]) {
    for kind in [
        "virtual_server",
        "real_server",
        "address",
        "ipset",
        "ipset_entry",
        "iptables_chain",
        "iptables_jump",
    ] {
        if except.contains(&kind) {
            continue;
        }
        let series = format!("kube_ipvs_proxy_ops_applied_total{{kind=\"{kind}\"}}");
        assert_eq!(daemon.metric(&series), None, "{series}");
    }
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_takeover_of_kube_proxy_s_node_changes_nothing() {
    let (hosts, _server, mut conn) = node_with_open_connection();
    let table = table_lines(&hosts.node);
    let cluster = cluster("takeover");
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.eventually("two syncs", || daemon.syncs() >= 2);

    conn.check("after the daemon took over\n");
    assert_eq!(
        table_lines(&hosts.node),
        table,
        "the takeover changed the table"
    );
    for summary in daemon.sync_summaries() {
        assert!(
            summary.contains("applied={} failed={}"),
            "a sync changed something: {summary}"
        );
    }
    no_operations_but(&daemon, &[]);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_takeover_of_a_slightly_wrong_node_changes_only_the_difference() {
    let (hosts, _server, mut conn) = node_with_open_connection();
    let node = &hosts.node;
    // kube-proxy kept an endpoint of `web` that is gone (its real server and its hairpin
    // entry, as it programs a local endpoint) and has not programmed a new one yet.
    node.run(&[
        "ipvsadm",
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{STALE}:8080"),
        "-m",
        "-w",
        "1",
    ]);
    node.run(&[
        "ipset",
        "add",
        "KUBE-LOOP-BACK",
        &format!("{STALE},tcp:8080,{STALE}"),
    ]);
    let cluster = cluster("takeover-diff");
    cluster.local_endpoints(
        "web",
        &[SlicePort::tcp("http", 8080)],
        &[ThreeHosts::BACKEND, MISSING],
    );
    let daemon = Daemon::start(node, bin(), &cluster, QUICK_SYNC);

    let web = |table: &BTreeSet<String>| -> BTreeSet<String> {
        table
            .iter()
            .filter(|l| l.contains(&format!("{VIP}:80 ")))
            .cloned()
            .collect()
    };
    let wanted: BTreeSet<String> = [
        format!("-A -t {VIP}:80 -s rr"),
        format!("-a -t {VIP}:80 -r {}:8080 -m -w 1", ThreeHosts::BACKEND),
        format!("-a -t {VIP}:80 -r {MISSING}:8080 -m -w 1"),
    ]
    .into();
    daemon.eventually("web's real servers to match the cluster", || {
        web(&table_lines(node)) == wanted
    });
    conn.check("after the daemon took over\n");
    // The first sync adds the missing endpoint and deletes the stale one, which has no
    // connection (kube-proxy's GracefulDeleteRS deletes such a real server at once), in
    // IPVS and in the hairpin set KUBE-LOOP-BACK: one entry in, one out. Nothing else is
    // touched.
    let real_server_ops =
        || daemon.metric("kube_ipvs_proxy_ops_applied_total{kind=\"real_server\"}");
    daemon.eventually("two real server operations in all", || {
        real_server_ops() == Some(2.0)
    });
    let summaries = daemon.sync_summaries();
    assert!(
        summaries[0].contains("applied={\"ipset_entry\": 2, \"real_server\": 2} failed={}"),
        "{summaries:#?}"
    );
    no_operations_but(&daemon, &["real_server", "ipset_entry"]);
}

/// Linux 6.1 keeps every network namespace's virtual servers in one table; while another
/// namespace has some, `/proc/net/ip_vs` skips some of this namespace's (each `read`
/// restarts at a position counted over this namespace's only). The daemon's periodic
/// syncs survey that file: a virtual server it skips must neither be added again (the
/// kernel refuses: the sync would fail every time) nor, as a stray of ours, be left.
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_periodic_syncs_see_what_the_overview_skips_while_another_namespace_has_virtual_servers() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let cluster = Synthetic {
        services: 300,
        endpoints_per_service: 2,
        node_port_every: None,
    };
    let dir = ClusterDir::new("overview-skips");
    cluster.write_dir(dir.path());
    let node = Netns::new("skips-node");
    let daemon = Daemon::start(&node, bin(), &dir, QUICK_SYNC);
    daemon.eventually("the first sync", || daemon.syncs() >= 1);

    // Another namespace's 300 virtual servers, as a Pod running IPVS would have.
    let other = Netns::new("skips-other");
    let rules: String = (0..300)
        .map(|i| format!("-A -t 10.97.{}.{}:80 -s rr\n", i / 250, i % 250 + 1))
        .collect();
    let file = std::env::temp_dir().join("overview-skips-other.rules");
    std::fs::write(&file, rules).expect("write the rules");
    let ipvsadm = testkit::tool("ipvsadm").display().to_string();
    other.run(&["sh", "-c", &format!("{ipvsadm} -R < {}", file.display())]);
    // A stray of ours in the middle of the table: on Service 150's bound address.
    let stray = "10.96.0.151:81";
    node.run(&[&ipvsadm, "-A", "-t", stray, "-s", "rr"]);
    let shown = node
        .run(&["sh", "-c", "cat /proc/net/ip_vs"])
        .lines()
        .filter(|l| l.starts_with("TCP"))
        .count();
    println!("/proc/net/ip_vs shows {shown} of the node's 301 virtual servers");
    assert!(
        shown < 301,
        "the kernel skipped nothing: this test shows nothing"
    );

    let before = daemon.sync_summaries().len();
    daemon.eventually("two periodic syncs", || {
        daemon.sync_summaries().len() >= before + 2
    });
    let summaries = daemon.sync_summaries();
    for summary in &summaries[before..] {
        assert!(summary.contains("failed={}"), "a sync failed: {summary}");
    }
    let table = node.run(&[&ipvsadm, "-Sn"]);
    assert!(!table.contains(stray), "the stray is left:\n{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("-A ")).count(), 300);
    assert_eq!(table.lines().filter(|l| l.starts_with("-a ")).count(), 600);
}

//! Taking over a node from kube-proxy in IPVS mode, in the VM: the node
//! already has the IPVS table, `kube-ipvs0` and the sysctls kube-proxy would
//! have made for the same Service (`ipvsadm -R`; rr, masquerading, weight 1),
//! kube-proxy's ipsets and iptables rules, and a connection is open through it
//! when the daemon starts.

use std::collections::BTreeSet;
use std::path::Path;

use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC, SlicePort};
use testkit::{EchoConn, Netns, ThreeHosts, ipvs_table, modprobe, serve_echo};

const VIP: &str = "10.96.0.10";
/// An endpoint kube-proxy did not program yet.
const MISSING: &str = "10.244.1.6";
/// An endpoint kube-proxy still has that is gone from the cluster.
const STALE: &str = "10.244.1.7";
/// Service `web`'s ports: (name, port, target port).
const PORTS: [(&str, u16, u16); 2] = [("http", 80, 8080), ("echo", 7, 7007)];

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// A cluster with Service `web` (http 80→8080, echo 7→7007) and these endpoints.
fn cluster(tag: &str, endpoints: &[&str]) -> ClusterDir {
    let cluster = ClusterDir::for_node(tag, &[ThreeHosts::NODE]);
    cluster.service(
        "web",
        &format!(
            "{{clusterIP: {VIP}, ports: [{{name: http, port: 80, targetPort: 8080}}, \
             {{name: echo, port: 7, targetPort: 7007}}]}}"
        ),
    );
    let ports = PORTS.map(|(name, _, target)| SlicePort::tcp(name, target));
    cluster.local_endpoints("web", &ports, endpoints);
    cluster
}

/// The `ipvsadm -R` lines kube-proxy programs for `web`, given the real
/// servers of each port (http's, then echo's), one line per set element.
fn kube_proxy_table(real_servers: [&[&str]; 2]) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for ((_, port, target), reals) in PORTS.iter().zip(real_servers) {
        lines.insert(format!("-A -t {VIP}:{port} -s rr"));
        for real in reals {
            lines.insert(format!("-a -t {VIP}:{port} -r {real}:{target} -m -w 1"));
        }
    }
    lines
}

/// The IPVS table as a set of lines, to compare whatever the listing order.
fn table_lines(node: &Netns) -> BTreeSet<String> {
    ipvs_table(node).lines().map(str::to_owned).collect()
}

/// Leaves the node as kube-proxy would: its sysctls, the table restored
/// with `ipvsadm -R`, and the VIP on the dummy link `kube-ipvs0`.
fn kube_proxy_left(node: &Netns, table: &BTreeSet<String>) {
    for key in [
        "conntrack",
        "expire_nodest_conn",
        "expire_quiescent_template",
    ] {
        node.sysctl(&format!("net.ipv4.vs.{key}"), "1");
    }
    let rules = std::env::temp_dir().join(format!("{}-kube-proxy.ipvs", node.name()));
    let text: String = table.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&rules, text).expect("write the kube-proxy table");
    let ipvsadm = testkit::tool("ipvsadm");
    node.sh(&format!("{} -R < {}", ipvsadm.display(), rules.display()));
    node.add_dummy("kube-ipvs0", &format!("{VIP}/32"));
    assert_eq!(&table_lines(node), table, "ipvsadm -R did not restore it");
}

/// Loads the ipsets and iptables rules kube-proxy writes for `cluster`: the
/// daemon's dry run prints exactly kube-proxy's `ipset` and
/// `iptables-restore --noflush` input, and the jumps it inserts one by one.
fn kube_proxy_rules(node: &Netns, cluster: &ClusterDir) {
    let dry = testkit::run(&[
        &bin().display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        testkit::daemon::NODE_NAME,
        "--dry-run",
    ]);
    let mut sets = String::new();
    let mut rules = String::new();
    let mut in_table = false;
    for line in dry.lines() {
        if line.starts_with("create KUBE-") || line.starts_with("add KUBE-") {
            sets.push_str(line);
            sets.push('\n');
        }
        in_table |= line.starts_with('*');
        if in_table {
            rules.push_str(line);
            rules.push('\n');
        }
        in_table &= line != "COMMIT";
    }
    let dir = std::env::temp_dir();
    let (sets_file, rules_file) = (
        dir.join(format!("{}-kube-proxy.ipset", node.name())),
        dir.join(format!("{}-kube-proxy.iptables", node.name())),
    );
    std::fs::write(&sets_file, sets).expect("write the sets");
    std::fs::write(&rules_file, rules).expect("write the rules");
    node.sh(&format!(
        "{} restore < {} && {} --noflush < {}",
        testkit::tool("ipset").display(),
        sets_file.display(),
        testkit::tool("iptables-restore").display(),
        rules_file.display()
    ));
    let iptables = testkit::tool("iptables");
    for jump in dry.lines().filter_map(|l| l.strip_prefix("#   -t ")) {
        node.sh(&format!("{} -t {jump}", iptables.display()));
    }
}

/// The three hosts with kube-proxy's table for `web` and an echo connection
/// open through it to the backend.
fn node_with_open_connection(table: &BTreeSet<String>) -> (ThreeHosts, EchoConn) {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    serve_echo(&hosts.backend, 7007);
    kube_proxy_left(&hosts.node, table);
    let mut conn = EchoConn::open(&hosts.client, VIP, 7);
    conn.check("through kube-proxy's table\n");
    (hosts, conn)
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_takeover_of_kube_proxy_s_table_changes_nothing() {
    let table = kube_proxy_table([&[ThreeHosts::BACKEND], &[ThreeHosts::BACKEND]]);
    let (hosts, mut conn) = node_with_open_connection(&table);
    let cluster = cluster("takeover", &[ThreeHosts::BACKEND]);
    kube_proxy_rules(&hosts.node, &cluster);
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
    for kind in [
        "virtual_server",
        "real_server",
        "address",
        "ipset",
        "ipset_entry",
        "iptables_chain",
        "iptables_jump",
    ] {
        let series = format!("kube_ipvs_proxy_ops_applied_total{{kind=\"{kind}\"}}");
        assert_eq!(daemon.metric(&series), None, "{series}");
    }
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_takeover_of_a_slightly_wrong_table_changes_only_the_difference() {
    // kube-proxy missed an endpoint and kept a stale one on the http port.
    let table = kube_proxy_table([&[ThreeHosts::BACKEND, STALE], &[ThreeHosts::BACKEND]]);
    let (hosts, mut conn) = node_with_open_connection(&table);
    // kube-proxy's sets still list the stale endpoint (both ports here).
    kube_proxy_rules(
        &hosts.node,
        &cluster("takeover-old", &[ThreeHosts::BACKEND, STALE]),
    );
    let cluster = cluster("takeover-diff", &[ThreeHosts::BACKEND, MISSING]);
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);

    let wanted = kube_proxy_table([&[ThreeHosts::BACKEND, MISSING]; 2]);
    daemon.eventually("the table to match the cluster", || {
        table_lines(&hosts.node) == wanted
    });
    conn.check("after the daemon took over\n");
    // The first sync adds the missing endpoint on both ports and drains the
    // stale one (in IPVS, and in the hairpin set KUBE-LOOP-BACK: one entry
    // out and one in per port); a later one deletes it. Nothing else is touched.
    // The sync that deleted it counts it once all its parts are done.
    let real_server_ops =
        || daemon.metric("kube_ipvs_proxy_ops_applied_total{kind=\"real_server\"}");
    daemon.eventually("four real server operations in all", || {
        real_server_ops() == Some(4.0)
    });
    let summaries = daemon.sync_summaries();
    assert!(
        summaries[0].contains("applied={\"ipset_entry\": 4, \"real_server\": 3} failed={}"),
        "{summaries:#?}"
    );
    for kind in [
        "virtual_server",
        "address",
        "ipset",
        "iptables_chain",
        "iptables_jump",
    ] {
        let series = format!("kube_ipvs_proxy_ops_applied_total{{kind=\"{kind}\"}}");
        assert_eq!(daemon.metric(&series), None, "{series}");
    }
}

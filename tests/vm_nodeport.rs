//! The daemon's helper dataplane in the VM, with real connections: NodePorts
//! on every node address (masqueraded through the KUBE-NODE-PORT-* sets and
//! KUBE-POSTROUTING, or not for `externalTrafficPolicy: Local`), an
//! externalIP, a LoadBalancer IP closed to sources outside
//! `loadBalancerSourceRanges`; the ipsets and chains checked against the real
//! `ipset save` and `iptables-save`; drift in them repaired; `--cleanup`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use testkit::daemon::{ClusterDir, Daemon, SlicePort};
use testkit::{Netns, ThreeHosts, busybox, http_get, modprobe, serve_http};

/// The node's address facing the client, and its address facing the pods.
const NODE: &str = "192.168.7.1";
const NODE_POD_SIDE: &str = "10.244.1.1";
const EXTERNAL_IP: &str = "192.0.2.50";
const LB_IP: &str = "192.0.2.100";
/// A second endpoint address, on another node.
const REMOTE_BACKEND: &str = "10.244.1.6";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// `default/web` (NodePort with an externalIP), `default/lb` (LoadBalancer
/// open to the client's address only) and `default/local` (NodePort with
/// `externalTrafficPolicy: Local`, one endpoint here and one elsewhere).
fn cluster() -> ClusterDir {
    let cluster = ClusterDir::new("nodeport");
    cluster.node("node-1", &[NODE]);
    cluster.write(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  externalIPs: [{EXTERNAL_IP}]\n\
             \x20 ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: 30080}}\n\
             \x20 - {{name: echo, port: 7, targetPort: 7007, nodePort: 30007}}\n"
        ),
    );
    cluster.write(
        "lb.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: lb, namespace: default}}\n\
             spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.20\n\
             \x20 loadBalancerSourceRanges: [{}/32]\n\
             \x20 ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: 30081}}\n\
             status:\n  loadBalancer:\n    ingress: [{{ip: {LB_IP}}}]\n",
            ThreeHosts::CLIENT
        ),
    );
    cluster.write(
        "local.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: local, namespace: default}\n\
         spec:\n  type: NodePort\n  clusterIP: 10.96.0.30\n  externalTrafficPolicy: Local\n\
         \x20 ports:\n  - {name: echo, port: 7, targetPort: 7007, nodePort: 30008}\n",
    );
    let here = [(ThreeHosts::BACKEND, "node-1")];
    let echo = SlicePort::tcp("echo", 7007);
    cluster.endpoints("web", &[SlicePort::tcp("http", 8080), echo], &here);
    cluster.endpoints("lb", &[SlicePort::tcp("http", 8080)], &here);
    cluster.endpoints(
        "local",
        &[echo],
        &[(ThreeHosts::BACKEND, "node-1"), (REMOTE_BACKEND, "node-2")],
    );
    cluster
}

/// The backends: HTTP on 8080 and a TCP echo on 7007, on both addresses.
fn backends(backend: &Netns) {
    backend.run(&[
        "ip",
        "addr",
        "add",
        &format!("{REMOTE_BACKEND}/24"),
        "dev",
        "eth0",
    ]);
    serve_http(backend, 8080, "hello from the backend");
    let bb = busybox().display().to_string();
    backend.spawn(&[&bb, "nc", "-ll", "-p", "7007", "-e", "cat"]);
}

/// A TCP connection from `client` to `addr:port` that echoes once.
fn echo_connection(client: &Netns, addr: &str, port: u16) -> TcpStream {
    let mut conn = client.enter(|| {
        TcpStream::connect_timeout(
            &format!("{addr}:{port}").parse().expect("socket address"),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("connect to {addr}:{port}: {e}"))
    });
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    conn.write_all(b"ping\n").expect("send");
    let mut buf = [0; 5];
    conn.read_exact(&mut buf).expect("no echo");
    assert_eq!(&buf, b"ping\n");
    conn
}

/// The peers of the backend's established echo connections, as
/// `local-address peer-address` pairs.
fn echo_peers(backend: &Netns) -> Vec<(String, String)> {
    let out = backend.sh(&format!("{} netstat -tn", busybox().display()));
    out.lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let (local, peer) = (words.get(3)?, words.get(4)?);
            local.ends_with(":7007").then(|| {
                // busybox prints IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`.
                let host = |s: &str| {
                    let h = s.rsplit_once(':').map_or(s, |(h, _)| h);
                    h.trim_start_matches("::ffff:").to_owned()
                };
                (host(local), host(peer))
            })
        })
        .collect()
}

fn ipvs(node: &Netns) -> String {
    node.run(&["ipvsadm", "-Sn"])
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_nodeport_external_ip_source_ranges_and_local_policy_with_real_traffic() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let (node, backend, client) = (&hosts.node, &hosts.backend, &hosts.client);
    backends(backend);
    let cluster = cluster();
    let daemon = Daemon::start(node, bin(), &cluster, &["--ipvs-min-sync-period", "0s"]);
    daemon.eventually("the virtual servers", || {
        ipvs(node).contains(&format!("-A -t {LB_IP}:80"))
    });
    daemon.next_sync();
    let table = ipvs(node);
    for address in [NODE, NODE_POD_SIDE] {
        assert!(
            table.contains(&format!("-A -t {address}:30080 -s rr")),
            "a NodePort on every node address:\n{table}"
        );
    }
    assert!(
        !table.contains("127.0.0.1:30080"),
        "never on loopback:\n{table}"
    );

    // NodePort from outside: the backend sees the node (masqueraded).
    let reply = http_get(client, NODE, 30080).expect("no reply through the NodePort");
    assert!(reply.contains("hello from the backend"), "{reply}");
    let masqueraded = echo_connection(client, NODE, 30007);
    let peers = echo_peers(backend);
    assert!(
        peers.contains(&(ThreeHosts::BACKEND.to_owned(), NODE_POD_SIDE.to_owned())),
        "the backend should see the node as source: {peers:?}"
    );
    drop(masqueraded);

    // externalIP.
    let reply = http_get(client, EXTERNAL_IP, 80).expect("no reply through the externalIP");
    assert!(reply.contains("hello from the backend"), "{reply}");

    // externalTrafficPolicy Local: only the local endpoint, source kept.
    let local_vs = table
        .lines()
        .filter(|l| l.starts_with(&format!("-a -t {NODE}:30008 ")))
        .collect::<Vec<_>>();
    assert_eq!(
        local_vs,
        vec![format!(
            "-a -t {NODE}:30008 -r {}:7007 -m -w 1",
            ThreeHosts::BACKEND
        )],
        "{table}"
    );
    assert!(
        table.contains(&format!("-a -t 10.96.0.30:7 -r {REMOTE_BACKEND}:7007")),
        "the cluster IP keeps every endpoint:\n{table}"
    );
    let _kept = echo_connection(client, NODE, 30008);
    let peers = echo_peers(backend);
    assert!(
        peers.contains(&(
            ThreeHosts::BACKEND.to_owned(),
            ThreeHosts::CLIENT.to_owned()
        )),
        "the client's address should reach the local endpoint: {peers:?}"
    );

    // LoadBalancer with source ranges: the client's address is allowed, a
    // second address of the client is not.
    let reply = http_get(client, LB_IP, 80).expect("an allowed source was refused");
    assert!(reply.contains("hello from the backend"), "{reply}");
    client.run(&["ip", "addr", "add", "192.168.7.3/24", "dev", "eth0"]);
    client.run(&[
        "ip",
        "route",
        "replace",
        "default",
        "via",
        NODE,
        "dev",
        "eth0",
        "src",
        "192.168.7.3",
    ]);
    assert_eq!(
        http_get(client, LB_IP, 80),
        None,
        "a source outside loadBalancerSourceRanges got through"
    );
    let reply = http_get(client, NODE, 30081).expect("the NodePort of the LB Service");
    assert!(reply.contains("hello from the backend"), "{reply}");
}

/// `add` lines of the daemon's dry run, as `ipset save` prints them (a host
/// network without `/32`).
fn dry_run_set_members(cluster: &ClusterDir) -> Vec<String> {
    let out = testkit::run(&[
        &bin().display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        "node-1",
        "--dry-run",
    ]);
    out.lines()
        .filter(|l| l.starts_with("add KUBE-"))
        .map(|l| l.trim_end_matches("/32").to_owned())
        .collect()
}

fn kernel_set_members(node: &Netns) -> Vec<String> {
    node.run(&["ipset", "save"])
        .lines()
        .filter(|l| l.starts_with("add KUBE-"))
        .map(str::to_owned)
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_nodeport_sets_and_chains_match_kube_proxy_are_repaired_and_cleaned_up() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let node = &hosts.node;
    let cluster = cluster();
    // A foreign IPVS service on a node address, outside the NodePort range.
    node.run(&["ipvsadm", "-A", "-t", &format!("{NODE}:8443"), "-s", "rr"]);
    let mut daemon = Daemon::start(
        node,
        bin(),
        &cluster,
        &["--ipvs-sync-period", "3s", "--ipvs-min-sync-period", "0s"],
    );
    daemon.eventually("the sets", || {
        kernel_set_members(node).iter().any(|l| l.contains(LB_IP))
    });
    daemon.next_sync();

    // The sets hold exactly what the dry run prints.
    let want = sorted(dry_run_set_members(&cluster));
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(sorted(kernel_set_members(node)), want);
    let sets = node.run(&["ipset", "list", "-n"]);
    assert_eq!(
        sets.lines().filter(|l| l.starts_with("KUBE-")).count(),
        17,
        "{sets}"
    );
    // The chains and some rules, as iptables-save prints them.
    let nat = node.run(&["iptables-save", "-t", "nat"]);
    for line in [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN",
        "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
    ] {
        assert!(nat.contains(line), "missing {line:?} in\n{nat}");
    }
    let filter = node.run(&["iptables-save", "-t", "filter"]);
    assert!(
        filter.contains("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP"),
        "{filter}"
    );
    // Steady state, after periodic syncs that read every table: no failure,
    // and nothing rewritten (the writer learned how iptables prints our rules).
    daemon.next_sync();
    let metrics = daemon.metrics();
    for counter in [
        "kube_ipvs_proxy_sync_errors_total{",
        "kube_ipvs_proxy_drift_repaired_total{",
    ] {
        assert!(
            !metrics.contains(counter),
            "{counter} in steady state:\n{metrics}\n{}",
            daemon.log()
        );
    }

    // A restart rewrites nothing: every chain and set is already right, and
    // the rules are written the way iptables-save prints them back.
    daemon.restart();
    daemon.next_sync();
    let metrics = daemon.metrics();
    for kind in ["ipset", "ipset_entry", "iptables_chain", "iptables_jump"] {
        let counter = format!("kube_ipvs_proxy_ops_applied_total{{kind=\"{kind}\"}}");
        assert!(
            !metrics.contains(&counter),
            "{kind} changed after a restart:\n{}\n{}{}",
            daemon.log(),
            node.run(&["iptables-save", "-t", "nat"]),
            node.run(&["iptables-save", "-t", "filter"])
        );
    }

    // Drift: a flushed set and a deleted rule are put back and counted.
    node.run(&["ipset", "flush", "KUBE-CLUSTER-IP"]);
    node.run(&[
        "iptables",
        "-t",
        "nat",
        "-D",
        "KUBE-SERVICES",
        "-s",
        "127.0.0.0/8",
        "-j",
        "RETURN",
    ]);
    daemon.eventually("the repairs", || {
        let nat = node.run(&["iptables-save", "-t", "nat"]);
        nat.contains("-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN")
            && sorted(kernel_set_members(node)) == want
    });
    // Counted when the sync that repaired them ends.
    for kind in ["ipset_entry", "iptables_chain"] {
        let counter = format!("kube_ipvs_proxy_drift_repaired_total{{kind=\"{kind}\"}}");
        daemon.eventually("the repair to be counted", || {
            daemon.metrics().contains(&counter)
        });
    }

    // --cleanup, twice: nothing of ours is left, the foreign service stays.
    daemon.stop();
    for _ in 0..2 {
        node.run(&[&bin().display().to_string(), "--cleanup"]);
    }
    let table = ipvs(node);
    assert_eq!(
        table.trim(),
        format!("-A -t {NODE}:8443 -s rr"),
        "only the foreign service stays"
    );
    let saved = format!(
        "{}{}",
        node.run(&["iptables-save", "-t", "nat"]),
        node.run(&["iptables-save", "-t", "filter"])
    );
    assert!(!saved.contains("KUBE-"), "{saved}");
    let sets = node.run(&["ipset", "list", "-n"]);
    assert!(!sets.contains("KUBE-"), "{sets}");
    let links = node.run(&["ip", "-o", "link"]);
    assert!(!links.contains("kube-ipvs0"), "{links}");
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_nodeport_udp_flows_to_a_removed_endpoint_are_deleted() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let (node, client) = (&hosts.node, &hosts.client);
    let vip = "10.96.0.53";
    let cluster = ClusterDir::new("udp");
    cluster.node("node-1", &[NODE]);
    cluster.write(
        "dns.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: dns, namespace: default}}\n\
             spec:\n  clusterIP: {vip}\n  ports:\n  - {{name: dns, port: 53, targetPort: 5353, protocol: UDP}}\n"
        ),
    );
    let dns = [SlicePort::udp("dns", 5353)];
    cluster.endpoints("dns", &dns, &[(ThreeHosts::BACKEND, "node-1")]);
    let daemon = Daemon::start(node, bin(), &cluster, &["--ipvs-min-sync-period", "0s"]);
    daemon.eventually("the UDP virtual server", || {
        ipvs(node).contains(&format!("-a -u {vip}:53 -r {}:5353", ThreeHosts::BACKEND))
    });
    // The VIP is bound once the sync that created the virtual server is done.
    daemon.next_sync();
    // Datagrams tracked to the endpoint (nobody answers: the flow is unreplied).
    let socket = client.enter(|| std::net::UdpSocket::bind("0.0.0.0:0").expect("bind"));
    let to_backend = format!("src={}", ThreeHosts::BACKEND);
    daemon.eventually("the flow tracked to the endpoint", || {
        socket.send_to(b"query", (vip, 53)).expect("send");
        node.udp_flows_to(vip)
            .iter()
            .any(|f| f.contains(&to_backend))
    });
    // The endpoint is replaced: its flow goes at the next sync, long before
    // the 30 s timeout of an unreplied UDP flow. The UDP real server is deleted
    // at once (as kube-proxy does), and the kernel then expires its IPVS
    // connections and their conntrack entries itself (expire_nodest_conn=1:
    // __ip_vs_del_dest queues ip_vs_enqueue_expire_nodest_conns), so the
    // daemon's own UDP cleanup finds nothing left here; netns_fallback counts it.
    cluster.endpoints("dns", &dns, &[(REMOTE_BACKEND, "node-1")]);
    let started = std::time::Instant::now();
    daemon.eventually("the stale flow to be deleted", || {
        !node
            .udp_flows_to(vip)
            .iter()
            .any(|f| f.contains(&to_backend))
    });
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the flow expired rather than being deleted"
    );
}

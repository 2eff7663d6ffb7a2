//! The iptables fallback end to end, on the host (whose kernel has no IPVS, so this is the
//! real case): `kube-ipvs-proxy --from-dir` runs in a "node" namespace with the default
//! proxy mode (ipvs), falls back to kube-proxy's iptables mode and says so; real connections
//! from a client namespace reach three backends in a pod namespace through the rules it
//! writes. Only the tests' own namespaces are touched.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testkit::daemon::{ClusterDir, Daemon, SlicePort};
use testkit::{EchoConn, End, Netns, ThreeHosts, busybox, veth};

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// The three backends, all in the pod namespace.
const BACKENDS: [&str; 3] = ["10.244.1.5", "10.244.1.6", "10.244.1.7"];

const WEB_VIP: &str = "10.96.0.10";
const STICKY_VIP: &str = "10.96.0.11";
const DNS_VIP: &str = "10.96.0.53";
const EMPTY_VIP: &str = "10.96.0.14";
const EXTERNAL_IP: &str = "203.0.113.10";
const LB_OPEN: &str = "203.0.113.20";
const LB_CLOSED: &str = "203.0.113.21";
const NODE_IP: &str = "192.168.7.1";

/// A Service (ClusterIP unless `spec` says otherwise) with ports `(name, port, target,
/// protocol)`.
fn service(name: &str, cluster_ip: &str, spec: &str, ports: &[(&str, u16, u16, &str)]) -> String {
    let ports: String = ports
        .iter()
        .map(|(n, p, t, proto)| {
            format!("  - {{name: {n}, port: {p}, targetPort: {t}, protocol: {proto}}}\n")
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  clusterIP: {cluster_ip}\n{spec}  ports:\n{ports}"
    )
}

/// A LoadBalancer Service with one HTTP port, its ingress IP and source ranges.
fn load_balancer(name: &str, cluster_ip: &str, node_port: u16, ip: &str, ranges: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  type: LoadBalancer\n  clusterIP: {cluster_ip}\n  loadBalancerSourceRanges: [{ranges}]\n\
         \x20 ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}\n\
         status:\n  loadBalancer:\n    ingress: [{{ip: {ip}}}]\n"
    )
}

/// Every Service of the tests, with their endpoints.
fn cluster() -> ClusterDir {
    let cluster = ClusterDir::new("fallback");
    cluster.node("node-1", &[NODE_IP]);
    let on_node = |addresses: &[&'static str]| -> Vec<(&'static str, &'static str)> {
        addresses.iter().map(|a| (*a, "node-1")).collect()
    };
    let http = [SlicePort::tcp("http", 8080)];
    cluster.write(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  type: NodePort\n  clusterIP: {WEB_VIP}\n  externalIPs: [{EXTERNAL_IP}]\n\
             \x20 ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: 30080}}\n\
             \x20 - {{name: echo, port: 7, targetPort: 7007, nodePort: 30007}}\n"
        ),
    );
    web_endpoints(&cluster, &BACKENDS);
    cluster.write(
        "sticky.yaml",
        &service(
            "sticky",
            STICKY_VIP,
            "  sessionAffinity: ClientIP\n",
            &[("http", 80, 8080, "TCP")],
        ),
    );
    cluster.endpoints("sticky", &http, &on_node(&BACKENDS));
    cluster.write(
        "dns.yaml",
        &service("dns", DNS_VIP, "", &[("dns", 53, 5353, "UDP")]),
    );
    cluster.endpoints("dns", &[SlicePort::udp("dns", 5353)], &on_node(&BACKENDS));
    cluster.write(
        "empty.yaml",
        &service("empty", EMPTY_VIP, "", &[("http", 80, 8080, "TCP")]),
    );
    cluster.endpoints("empty", &http, &[]);
    for (name, vip, node_port, ip, ranges) in [
        ("lb-open", "10.96.0.12", 30081, LB_OPEN, "192.168.7.0/24"),
        (
            "lb-closed",
            "10.96.0.13",
            30082,
            LB_CLOSED,
            "198.51.100.0/24",
        ),
    ] {
        cluster.write(
            &format!("{name}.yaml"),
            &load_balancer(name, vip, node_port, ip, ranges),
        );
        cluster.endpoints(name, &http, &on_node(&BACKENDS[..1]));
    }
    cluster
}

/// Replaces the endpoints of Service `web`.
fn web_endpoints(cluster: &ClusterDir, addresses: &[&str]) {
    let endpoints: Vec<(&str, &str)> = addresses.iter().map(|a| (*a, "node-1")).collect();
    cluster.endpoints(
        "web",
        &[SlicePort::tcp("http", 8080), SlicePort::tcp("echo", 7007)],
        &endpoints,
    );
}

/// Serves `backend ADDRESS` over HTTP on ADDRESS:8080 for each backend, a TCP echo on
/// port 7007; waits until every server listens.
fn start_backends(pod: &Netns) {
    let bb = busybox().display().to_string();
    for address in &BACKENDS[1..] {
        pod.run(&["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
    }
    for address in BACKENDS {
        let root = std::env::temp_dir().join(format!("{}-www-{address}", pod.name()));
        std::fs::create_dir_all(&root).expect("create the web root");
        std::fs::write(root.join("index.html"), format!("backend {address}\n"))
            .expect("write the page");
        let listen = format!("{address}:8080");
        pod.spawn(&[
            &bb,
            "httpd",
            "-f",
            "-p",
            &listen,
            "-h",
            &root.display().to_string(),
        ]);
    }
    pod.spawn(&[&bb, "nc", "-ll", "-p", "7007", "-e", "cat"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let listening = || {
        let out = pod.run(&[&bb, "netstat", "-ltn"]);
        BACKENDS.iter().all(|a| out.contains(&format!("{a}:8080 "))) && out.contains(":7007 ")
    };
    while !listening() {
        assert!(Instant::now() < deadline, "the backends did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `iptables-save` of the node, both tables.
fn saved(node: &Netns) -> String {
    node.run(&["iptables-save"])
}

/// The daemon's rules, as `table/chain` → rules: every chain named `KUBE-*`, and the
/// rules of built-in chains that jump to one. Counters and comments lines are left out.
fn kube_rules(save: &str) -> BTreeMap<String, Vec<String>> {
    let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut table = "";
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if let Some(decl) = line.strip_prefix(':') {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            if chain.starts_with("KUBE-") {
                rules.entry(format!("{table}/{chain}")).or_default();
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
            if chain.starts_with("KUBE-") || spec.contains("-j KUBE-") {
                rules
                    .entry(format!("{table}/{chain}"))
                    .or_default()
                    .push(spec.to_owned());
            }
        }
    }
    rules
}

/// The namespaces, the backends and the cluster directory; the daemon starts in the test
/// (it borrows the node namespace). The node also gets a default route to an "uplink"
/// namespace, as a real node has one: without it, packets to a Service address that no rule
/// translates would fail routing before the filter rules that reject them.
fn setup() -> (ThreeHosts, Netns, ClusterDir) {
    let hosts = ThreeHosts::new();
    let uplink = Netns::new("uplink");
    veth(
        End {
            ns: &hosts.node,
            ifname: "up0",
            addr: Some("172.30.0.2/24"),
        },
        End {
            ns: &uplink,
            ifname: "eth0",
            addr: Some("172.30.0.1/24"),
        },
    );
    hosts
        .node
        .run(&["ip", "route", "add", "default", "via", "172.30.0.1"]);
    start_backends(&hosts.backend);
    (hosts, uplink, cluster())
}

/// Starts the daemon with the default proxy mode and waits for its first sync.
fn start<'a>(hosts: &'a ThreeHosts, cluster: &ClusterDir) -> Daemon<'a> {
    let daemon = Daemon::start(
        &hosts.node,
        bin(),
        cluster,
        &["--ipvs-sync-period", "3s", "--ipvs-min-sync-period", "0s"],
    );
    daemon.eventually("a first sync", || daemon.syncs() > 0);
    daemon
}

/// `GET path` over a new connection to `target` (3 s timeouts) from the calling thread's
/// namespace: the whole response, `None` when the connection failed.
fn get(target: SocketAddr, path: &str) -> Option<String> {
    testkit::http_request(target, path).ok()
}

/// `GET /` to `addr:port` from a thread in `ns`, `n` times, each on a new connection; the
/// bodies, `None` for a connection that failed.
fn http_many(ns: &Netns, addr: &str, port: u16, n: usize) -> Vec<Option<String>> {
    let target = SocketAddr::new(addr.parse().expect("address"), port);
    ns.enter(|| {
        (0..n)
            .map(|_| {
                let reply = get(target, "/")?;
                reply.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
            })
            .collect()
    })
}

/// `GET path` on the daemon's metrics address in `node`, whole response.
fn metrics_endpoint(node: &Netns, path: &str) -> String {
    let target = SocketAddr::from(([127, 0, 0, 1], 10249));
    node.enter(|| get(target, path))
        .unwrap_or_else(|| panic!("no answer on {target}{path}"))
}

/// How many replies came from each backend; panics on a failed connection.
fn spread(replies: &[Option<String>]) -> BTreeMap<String, usize> {
    let mut by_backend = BTreeMap::new();
    for reply in replies {
        let body = reply.as_deref().expect("a connection failed");
        *by_backend.entry(body.to_owned()).or_insert(0) += 1;
    }
    by_backend
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_is_announced_and_no_fallback_exits_with_the_reason() {
    let (hosts, _uplink, cluster) = setup();
    let daemon = start(&hosts, &cluster);
    let log = daemon.log();
    let warn = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("IPVS is not usable on this node"))
        .unwrap_or_else(|| panic!("no fallback warning in:\n{log}"));
    assert!(
        warn.contains("generic netlink family \\\"IPVS\\\"")
            || warn.contains("generic netlink family \"IPVS\""),
        "the warning does not say what is missing: {warn}"
    );
    assert!(
        warn.contains("falling back to kube-proxy's iptables mode"),
        "{warn}"
    );
    let mode = metrics_endpoint(&hosts.node, "/proxyMode");
    assert!(mode.ends_with("\r\n\r\niptables"), "{mode}");
    let metrics = metrics_endpoint(&hosts.node, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "kube_ipvs_proxy_proxy_mode{mode=\"iptables\"} 1"),
        "{metrics}"
    );
    assert!(
        saved(&hosts.node).contains("-A KUBE-SERVICES"),
        "no rules written"
    );

    // With --no-fallback the daemon refuses, in one line, and writes nothing.
    let client_only = Netns::new("nofallback");
    let out = client_only.try_run(&[
        &bin().display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        "node-1",
        "--no-fallback",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kube-ipvs-proxy: proxy mode ipvs: IPVS is not usable on this node (")
            && last.ends_with("--no-fallback forbids the iptables fallback"),
        "{stderr}"
    );
    assert!(!stderr.contains("falling back"), "{stderr}");
    assert!(
        !saved(&client_only).contains("KUBE-"),
        "--no-fallback wrote rules"
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_cluster_ip_tcp_is_balanced_and_a_removed_endpoint_gets_nothing() {
    let (hosts, _uplink, cluster) = setup();
    let daemon = start(&hosts, &cluster);
    let by_backend = spread(&http_many(&hosts.client, WEB_VIP, 80, 300));
    println!("300 connections to {WEB_VIP}:80: {by_backend:?}");
    assert_eq!(by_backend.len(), 3, "{by_backend:?}");
    for (backend, n) in &by_backend {
        assert!(*n >= 45, "{backend} got {n} of 300 (< 15%): {by_backend:?}");
    }

    web_endpoints(&cluster, &BACKENDS[..2]);
    daemon.eventually("the removed endpoint's rules to go", || {
        !saved(&hosts.node).contains("default/web:http -> 10.244.1.7:8080")
    });
    let by_backend = spread(&http_many(&hosts.client, WEB_VIP, 80, 60));
    assert!(
        !by_backend.contains_key("backend 10.244.1.7"),
        "the removed endpoint still got traffic: {by_backend:?}"
    );
    assert_eq!(by_backend.len(), 2, "{by_backend:?}");
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_cluster_ip_udp_reaches_the_backends() {
    let (hosts, _uplink, cluster) = setup();
    let _daemon = start(&hosts, &cluster);
    // One UDP echo per backend address, answering with its address.
    let sockets: Vec<UdpSocket> = hosts.backend.enter(|| {
        BACKENDS
            .iter()
            .map(|a| UdpSocket::bind((*a, 5353)).expect("bind the UDP backend"))
            .collect()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = sockets
        .into_iter()
        .map(|s| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                let me = s.local_addr().expect("address").ip().to_string();
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(format!("backend {me}").as_bytes(), from);
                    }
                }
            })
        })
        .collect();
    let replies: Vec<String> = hosts.client.enter(|| {
        (0..30)
            .map(|_| {
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind the client");
                s.connect((DNS_VIP, 53)).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                s.send(b"ask").expect("send");
                let mut buf = [0u8; 512];
                let n = s
                    .recv(&mut buf)
                    .expect("no UDP reply through the cluster IP");
                String::from_utf8_lossy(&buf[..n]).into_owned()
            })
            .collect()
    });
    let seen: BTreeSet<&str> = replies.iter().map(String::as_str).collect();
    println!("30 UDP flows to {DNS_VIP}:53: {seen:?}");
    assert!(
        seen.len() >= 2,
        "every flow went to one backend: {replies:?}"
    );
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        let _ = s.join();
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_udp_flows_to_a_removed_endpoint_are_deleted() {
    let (hosts, _uplink, cluster) = setup();
    let daemon = start(&hosts, &cluster);
    let node = &hosts.node;
    // A datagram from one client socket: the flow is translated to one backend (nobody
    // answers on 5353 here, so it stays unreplied).
    let socket = hosts
        .client
        .enter(|| UdpSocket::bind("0.0.0.0:0").expect("bind"));
    let tracked_to = |flows: &[String]| -> Option<&'static str> {
        BACKENDS
            .into_iter()
            .find(|b| flows.iter().any(|f| f.contains(&format!("src={b} "))))
    };
    let mut gone = None;
    daemon.eventually("a UDP flow tracked to a backend", || {
        socket.send_to(b"query", (DNS_VIP, 53)).expect("send");
        gone = tracked_to(&node.udp_flows_to(DNS_VIP));
        gone.is_some()
    });
    let gone = gone.expect("found a moment ago");
    // That endpoint leaves: its flow is deleted at the next sync, so the client's next
    // datagram (same socket, same 5-tuple) reaches a remaining endpoint instead of going
    // on to the old one until the flow times out.
    let remaining: Vec<(&str, &str)> = BACKENDS
        .into_iter()
        .filter(|b| *b != gone)
        .map(|b| (b, "node-1"))
        .collect();
    cluster.endpoints("dns", &[SlicePort::udp("dns", 5353)], &remaining);
    daemon.eventually("the stale flow to be deleted", || {
        tracked_to(&node.udp_flows_to(DNS_VIP)) != Some(gone)
    });
    daemon.eventually("the deletion to be counted", || {
        daemon
            .metrics()
            .contains("kube_ipvs_proxy_ops_applied_total{kind=\"conntrack_entry\"}")
    });
    daemon.eventually(
        "the same socket's flow tracked to a remaining backend",
        || {
            socket.send_to(b"query", (DNS_VIP, 53)).expect("send");
            tracked_to(&node.udp_flows_to(DNS_VIP)).is_some_and(|b| b != gone)
        },
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_node_port_external_ip_and_load_balancer_source_ranges() {
    let (hosts, _uplink, cluster) = setup();
    let _daemon = start(&hosts, &cluster);
    let client = &hosts.client;
    for (what, addr, port) in [
        ("NodePort", NODE_IP, 30080),
        ("external IP", EXTERNAL_IP, 80),
        ("load balancer IP inside the source ranges", LB_OPEN, 80),
    ] {
        let replies = http_many(client, addr, port, 5);
        assert!(
            replies.iter().all(|r| r
                .as_deref()
                .is_some_and(|b| b.starts_with("backend 10.244.1."))),
            "{what} {addr}:{port}: {replies:?}"
        );
    }
    let refused = http_many(client, LB_CLOSED, 80, 1);
    assert_eq!(
        refused,
        [None],
        "a client outside the source ranges got through"
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_session_affinity_keeps_a_client_on_one_backend() {
    let (hosts, _uplink, cluster) = setup();
    let _daemon = start(&hosts, &cluster);
    let by_backend = spread(&http_many(&hosts.client, STICKY_VIP, 80, 30));
    assert_eq!(
        by_backend.len(),
        1,
        "ClientIP affinity broken: {by_backend:?}"
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_a_service_without_endpoints_is_refused_at_once() {
    let (hosts, _uplink, cluster) = setup();
    let _daemon = start(&hosts, &cluster);
    let target: SocketAddr = format!("{EMPTY_VIP}:80").parse().expect("address");
    let (result, took) = hosts.client.enter(|| {
        let started = Instant::now();
        let result = TcpStream::connect_timeout(&target, Duration::from_secs(5));
        (result.map(|_| ()), started.elapsed())
    });
    let err = result.expect_err("a Service without endpoints accepted a connection");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{err} after {took:?}"
    );
    assert!(took < Duration::from_secs(1), "refused only after {took:?}");
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_restart_keeps_an_established_connection_and_the_rules() {
    let (hosts, _uplink, cluster) = setup();
    let mut daemon = start(&hosts, &cluster);
    let mut conn = EchoConn::open(&hosts.client, WEB_VIP, 7);
    let mut echo = |msg: &str| conn.check(msg);
    echo("before\n");
    daemon.stop();
    let before = kube_rules(&saved(&hosts.node));
    echo("while the daemon is down\n");
    let syncs = daemon.syncs();
    daemon.restart();
    daemon.eventually("a sync after the restart", || daemon.syncs() > syncs);
    echo("after the restart\n");
    assert_eq!(
        kube_rules(&saved(&hosts.node)),
        before,
        "the restart changed the rules"
    );
    // A new process has not learnt how the kernel prints the rules it generates, so its
    // first sync may rewrite chains (with the same rules, as checked above); from then on
    // a sync changes nothing.
    daemon.next_sync();
    let summaries = daemon.sync_summaries();
    let last = summaries.last().cloned().unwrap_or_default();
    assert!(
        last.contains("applied={}") && last.contains("drift={}"),
        "a sync after the restart still changes rules: {last}"
    );
}

/// The expected rules of the small cluster below, in the format of [`kube_rules`].
fn expected_rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fallback-rules.v4.txt")
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_rules_equal_the_expected_text_per_chain() {
    let node = Netns::new("rules");
    let cluster = ClusterDir::new("fallback-rules");
    cluster.node("node-1", &[NODE_IP]);
    cluster.write(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
             spec:\n  type: NodePort\n  clusterIP: {WEB_VIP}\n\
             \x20 ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: 30080}}\n"
        ),
    );
    cluster.endpoints(
        "web",
        &[SlicePort::tcp("http", 8080)],
        &[("10.244.1.5", "node-1"), ("10.244.1.6", "node-1")],
    );
    cluster.write(
        "empty.yaml",
        &service("empty", EMPTY_VIP, "", &[("http", 80, 8080, "TCP")]),
    );
    let daemon = Daemon::start(&node, bin(), &cluster, &[]);
    daemon.eventually("a first sync", || daemon.syncs() > 0);
    let actual = kube_rules(&saved(&node));
    let text: String = actual
        .iter()
        .map(|(chain, rules)| {
            let rules: String = rules.iter().map(|r| format!("  {r}\n")).collect();
            format!("{chain}\n{rules}")
        })
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(expected_rules_file(), &text).expect("write the expected rules");
    }
    let expected_text =
        std::fs::read_to_string(expected_rules_file()).expect("testdata/fallback-rules.v4.txt");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut chain = String::new();
    for line in expected_text.lines() {
        match line.strip_prefix("  ") {
            Some(rule) => expected
                .entry(chain.clone())
                .or_default()
                .push(rule.to_owned()),
            None => {
                chain = line.to_owned();
                expected.entry(chain.clone()).or_default();
            }
        }
    }
    let names: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    let differing: Vec<String> = names
        .into_iter()
        .filter(|c| actual.get(*c) != expected.get(*c))
        .map(|c| {
            format!(
                "{c}:\n  expected {:#?}\n  actual {:#?}",
                expected.get(c),
                actual.get(c)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "chains differ:\n{}",
        differing.join("\n")
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_rules_changed_by_hand_are_repaired_and_counted_as_drift() {
    let (hosts, _uplink, cluster) = setup();
    let daemon = start(&hosts, &cluster);
    let before = kube_rules(&saved(&hosts.node));
    hosts
        .node
        .run(&["iptables", "-t", "nat", "-F", "KUBE-SERVICES"]);
    hosts.node.run(&[
        "iptables",
        "-t",
        "filter",
        "-D",
        "FORWARD",
        "-j",
        "KUBE-FORWARD",
        "-m",
        "comment",
        "--comment",
        "kubernetes forwarding rules",
    ]);
    // A missing jump is inserted at the top of its built-in chain: compare those as sets.
    let jumps_in_any_order = |mut rules: BTreeMap<String, Vec<String>>| {
        for (chain, rules) in &mut rules {
            if !chain.contains("/KUBE-") {
                rules.sort();
            }
        }
        rules
    };
    let before = jumps_in_any_order(before);
    daemon.eventually("the periodic sync to repair the rules", || {
        jumps_in_any_order(kube_rules(&saved(&hosts.node))) == before
    });
    assert!(!spread(&http_many(&hosts.client, WEB_VIP, 80, 3)).is_empty());
    let metrics = metrics_endpoint(&hosts.node, "/metrics");
    for kind in ["iptables_chain", "iptables_jump"] {
        assert!(
            metrics.contains(&format!(
                "kube_ipvs_proxy_drift_repaired_total{{kind=\"{kind}\"}}"
            )),
            "{kind} drift not counted:\n{metrics}"
        );
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_fallback_dual_stack_service_is_proxied_by_iptables_and_ip6tables() {
    let hosts = ThreeHosts::new();
    let (client, node, pod) = (&hosts.client, &hosts.node, &hosts.backend);
    for (ns, dev, addr) in [
        (client, "eth0", "fd00:7::2/64"),
        (node, "cli0", "fd00:7::1/64"),
        (node, "pod0", "fd00:244::1/64"),
        (pod, "eth0", "fd00:244::5/64"),
    ] {
        ns.run(&["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }
    client.run(&["ip", "-6", "route", "add", "default", "via", "fd00:7::1"]);
    pod.run(&["ip", "-6", "route", "add", "default", "via", "fd00:244::1"]);
    node.sysctl("net.ipv6.conf.all.forwarding", "1");
    // One server on both families' any address.
    testkit::serve_http(pod, 8080, "dual-stack backend");

    let cluster = ClusterDir::new("fallback-dual");
    cluster.node("node-1", &[NODE_IP, "fd00:7::1"]);
    cluster.write(
        "web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
         spec:\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n\
         \x20 clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.20, \"fd00:96::20\"]\n\
         \x20 ports:\n  - {name: http, port: 80, targetPort: 8080}\n",
    );
    cluster.endpoints(
        "web",
        &[SlicePort::tcp("http", 8080)],
        &[(ThreeHosts::BACKEND, "node-1")],
    );
    cluster.write(
        "slice-web-v6.yaml",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: web-v6\n  namespace: default\n\
         \x20 labels: {kubernetes.io/service-name: web}\n\
         addressType: IPv6\nports:\n- {name: http, port: 8080, protocol: TCP}\n\
         endpoints:\n- addresses: [\"fd00:244::5\"]\n  nodeName: node-1\n",
    );
    let daemon = Daemon::start(node, bin(), &cluster, &["--proxy-mode", "iptables"]);
    daemon.eventually("a first sync", || daemon.syncs() > 0);
    assert!(
        !daemon.log().contains("IPVS is not usable"),
        "a configured iptables mode is no fallback"
    );
    let v6 = node.run(&["ip6tables-save", "-t", "nat"]);
    assert!(
        v6.contains("--to-destination [fd00:244::5]:8080"),
        "no IPv6 DNAT:\n{v6}"
    );
    for vip in ["10.96.0.20", "fd00:96::20"] {
        let replies = http_many(client, vip, 80, 3);
        assert!(
            replies
                .iter()
                .all(|r| r.as_deref() == Some("dual-stack backend")),
            "{vip}: {replies:?}"
        );
    }
}

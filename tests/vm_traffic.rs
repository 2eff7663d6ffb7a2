//! The daemon's IPVS core with real traffic, in the VM: UDP, multiport,
//! session affinity, the per-Service scheduler, IPv6, and endpoints leaving
//! under an open connection until their graceful deletion. Each test runs
//! `kube-ipvs-proxy --from-dir` in the node namespace of [`ThreeHosts`], and
//! the client namespace talks to backends (pods) through it.

use std::collections::BTreeSet;
use std::path::Path;

use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC, SlicePort};
use testkit::{
    EchoConn, ThreeHosts, UdpResponder, http_body, ipvs_table, modprobe, serve_echo, serve_http,
    serve_name, udp_ask,
};

const VIP: &str = "10.96.0.10";
/// A second pod address, on the backend namespace too.
const SECOND: &str = "10.244.1.6";

/// The daemon under test.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// The modules the tests use before the daemon runs.
fn modules() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
}

/// The three hosts with two pod addresses on the backend, each serving its
/// own name over HTTP on port 8080.
fn two_name_backends() -> ThreeHosts {
    modules();
    let hosts = ThreeHosts::new();
    hosts.add_backend(SECOND);
    serve_name(&hosts.backend, ThreeHosts::BACKEND, 8080);
    serve_name(&hosts.backend, SECOND, 8080);
    hosts
}

/// Asks `n` times, each time as a new connection, and returns who answered.
fn answers(n: usize, mut ask: impl FnMut() -> String) -> BTreeSet<String> {
    (0..n).map(|_| ask()).collect()
}

/// The strings, as a set to compare [`answers`] with.
fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_udp_cluster_ip_and_an_endpoint_leaving() {
    modules();
    let hosts = ThreeHosts::new();
    hosts.add_backend(SECOND);
    let _first = UdpResponder::answering_name(&hosts.backend, ThreeHosts::BACKEND, 5353);
    let _second = UdpResponder::answering_name(&hosts.backend, SECOND, 5353);
    let cluster = ClusterDir::for_node("udp", &[ThreeHosts::NODE]);
    cluster.service(
        "dns",
        &format!(
            "{{clusterIP: {VIP}, ports: [{{name: dns, protocol: UDP, port: 53, targetPort: 5353}}]}}"
        ),
    );
    let port = [SlicePort::udp("dns", 5353)];
    cluster.local_endpoints("dns", &port, &[ThreeHosts::BACKEND, SECOND]);
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.synced("the UDP virtual server", || {
        ipvs_table(&hosts.node).contains(&format!("-a -u {VIP}:53 -r {SECOND}:5353 -m -w 1"))
    });

    // Round robin over fresh source ports: both backends answer, and their
    // replies come back through IPVS (the client sees the VIP answer).
    let ask = || {
        udp_ask(&hosts.client, VIP, 53).unwrap_or_else(|| {
            panic!(
                "no UDP reply through the virtual server:\n{}{}",
                hosts.node.run(&["ipvsadm", "-Lnc"]),
                hosts.node.run(&["ip", "addr", "show", "dev", "kube-ipvs0"])
            )
        })
    };
    assert_eq!(answers(4, ask), set(&[ThreeHosts::BACKEND, SECOND]));

    // The first backend leaves: a UDP real server is deleted at once, without
    // draining at weight 0 (kube-proxy's IsRsGracefulTerminationNeeded).
    cluster.local_endpoints("dns", &port, &[SECOND]);
    let leaving = format!("-r {}:5353 ", ThreeHosts::BACKEND);
    daemon.eventually("the leaving UDP real server to be deleted", || {
        !ipvs_table(&hosts.node).contains(&leaving)
    });
    assert_eq!(answers(4, ask), set(&[SECOND]));
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_multiport_service_carries_both_ports() {
    modules();
    let hosts = ThreeHosts::new();
    serve_http(&hosts.backend, 8080, "web on 8080");
    serve_http(&hosts.backend, 9090, "admin on 9090");
    let cluster = ClusterDir::for_node("multiport", &[ThreeHosts::NODE]);
    cluster.service(
        "web",
        &format!(
            "{{clusterIP: {VIP}, ports: [{{name: web, port: 80, targetPort: 8080}}, \
             {{name: admin, port: 8000, targetPort: 9090}}]}}"
        ),
    );
    cluster.local_endpoints(
        "web",
        &[SlicePort::tcp("web", 8080), SlicePort::tcp("admin", 9090)],
        &[ThreeHosts::BACKEND],
    );
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.synced("both virtual servers", || {
        let table = ipvs_table(&hosts.node);
        table.contains(&format!("-a -t {VIP}:80 -r {}:8080 ", ThreeHosts::BACKEND))
            && table.contains(&format!(
                "-a -t {VIP}:8000 -r {}:9090 ",
                ThreeHosts::BACKEND
            ))
    });
    assert_eq!(http_body(&hosts.client, VIP, 80), "web on 8080");
    assert_eq!(http_body(&hosts.client, VIP, 8000), "admin on 9090");
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_session_affinity_keeps_a_client_on_one_backend() {
    let hosts = two_name_backends();
    let cluster = ClusterDir::for_node("affinity", &[ThreeHosts::NODE]);
    cluster.service(
        "sticky",
        &format!(
            "{{clusterIP: {VIP}, sessionAffinity: ClientIP, \
             sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 600}}}}, \
             ports: [{{name: http, port: 80, targetPort: 8080}}]}}"
        ),
    );
    cluster.local_endpoints(
        "sticky",
        &[SlicePort::tcp("http", 8080)],
        &[ThreeHosts::BACKEND, SECOND],
    );
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.synced("both real servers", || {
        ipvs_table(&hosts.node).contains(&format!("-r {SECOND}:8080 -m -w 1"))
    });
    let table = ipvs_table(&hosts.node);
    assert!(
        table.contains(&format!("-A -t {VIP}:80 -s rr -p 600")),
        "no persistence with the affinity timeout:\n{table}"
    );

    let backends = set(&[ThreeHosts::BACKEND, SECOND]);
    let sticky = |n| answers(n, || http_body(&hosts.client, VIP, 80));
    let first = sticky(20);
    assert_eq!(
        first.len(),
        1,
        "one client reached several backends: {first:?}"
    );
    assert!(first.is_subset(&backends), "{first:?}");

    // Another client address has an affinity of its own (wherever it lands).
    hosts
        .client
        .run(&["ip", "addr", "add", "192.168.7.3/24", "dev", "eth0"]);
    hosts.client.run(&[
        "ip",
        "route",
        "replace",
        "default",
        "via",
        ThreeHosts::NODE,
        "src",
        "192.168.7.3",
    ]);
    let other = sticky(5);
    assert_eq!(other.len(), 1, "the second client moved: {other:?}");
    assert!(other.is_subset(&backends), "{other:?}");
}

/// Starts the daemon on ClusterIP Services `(name, VIP, annotations)`, each with port 80 on
/// both backends' 8080, and waits until every one is programmed.
fn start_with_annotated_services<'a>(
    hosts: &'a ThreeHosts,
    cluster: &ClusterDir,
    services: &[(&str, &str, String)],
) -> Daemon<'a> {
    for (name, vip, annotations) in services {
        cluster.annotated_service(
            name,
            annotations,
            &format!("{{clusterIP: {vip}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}"),
        );
        cluster.local_endpoints(
            name,
            &[SlicePort::tcp("http", 8080)],
            &[ThreeHosts::BACKEND, SECOND],
        );
    }
    let daemon = Daemon::start(&hosts.node, bin(), cluster, QUICK_SYNC);
    daemon.synced("the annotated virtual servers", || {
        let table = ipvs_table(&hosts.node);
        services
            .iter()
            .all(|(_, vip, _)| table.contains(&format!("-a -t {vip}:80 -r {SECOND}:8080")))
    });
    daemon
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_scheduler_annotation_and_an_unknown_scheduler() {
    let hosts = two_name_backends();
    let cluster = ClusterDir::for_node("scheduler", &[ThreeHosts::NODE]);
    let services = [
        ("hashed", "10.96.0.11", "sh", "sh"),
        ("weighted", "10.96.0.12", "wrr", "wrr"),
        // Unknown: the Service keeps the global scheduler (rr).
        ("bogus", "10.96.0.13", "fastest", "rr"),
    ];
    let annotated: Vec<_> = services
        .iter()
        .map(|(name, vip, annotation, _)| {
            let annotations = format!("{{kube-ipvs-proxy.io/ipvs-scheduler: {annotation}}}");
            (*name, *vip, annotations)
        })
        .collect();
    let daemon = start_with_annotated_services(&hosts, &cluster, &annotated);
    let table = ipvs_table(&hosts.node);
    for (_, vip, _, scheduler) in services {
        assert!(
            table.contains(&format!("-A -t {vip}:80 -s {scheduler}\n")),
            "{vip} is not on {scheduler}:\n{table}"
        );
    }
    let invalid = daemon.metric("kube_ipvs_proxy_invalid_objects_total{kind=\"Service\"}");
    assert!(
        invalid.is_some_and(|n| n >= 1.0),
        "the unknown scheduler is not counted: {invalid:?}"
    );

    let backends = set(&[ThreeHosts::BACKEND, SECOND]);
    // Source hashing sends one client to one backend every time.
    let hashed = answers(5, || http_body(&hosts.client, "10.96.0.11", 80));
    assert_eq!(hashed.len(), 1, "sh spread one client: {hashed:?}");
    assert!(hashed.is_subset(&backends), "{hashed:?}");
    // Equal weights: wrr and rr alternate.
    for vip in ["10.96.0.12", "10.96.0.13"] {
        assert_eq!(answers(4, || http_body(&hosts.client, vip, 80)), backends);
    }
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_scheduler_flags_from_our_and_kube_routers_annotations() {
    let hosts = two_name_backends();
    let cluster = ClusterDir::for_node("schedflags", &[ThreeHosts::NODE]);
    // (name, VIP, annotations, the line the real ipvsadm -Sn prints for it)
    let services = [
        (
            "hashed",
            "10.96.0.21",
            "{kube-ipvs-proxy.io/ipvs-scheduler: sh}",
            "-A -t 10.96.0.21:80 -s sh\n",
        ),
        (
            "ported",
            "10.96.0.22",
            "{kube-ipvs-proxy.io/ipvs-scheduler: sh, kube-ipvs-proxy.io/ipvs-sched-flags: sh-port}",
            "-A -t 10.96.0.22:80 -s sh -b sh-port\n",
        ),
        (
            "router",
            "10.96.0.23",
            "{kube-router.io/service.scheduler: mh, kube-router.io/service.schedflags: \"flag-1,flag-2\"}",
            "-A -t 10.96.0.23:80 -s mh -b mh-fallback,mh-port\n",
        ),
    ];
    let annotated: Vec<_> = services
        .iter()
        .map(|(name, vip, annotations, _)| (*name, *vip, (*annotations).to_owned()))
        .collect();
    let _daemon = start_with_annotated_services(&hosts, &cluster, &annotated);
    let table = ipvs_table(&hosts.node);
    for (_, _, _, line) in services {
        assert!(table.contains(line), "no {line:?} in:\n{table}");
    }

    // One client, a new source port for each connection: sh hashes the address only, so
    // every connection lands on one backend; with sh-port the port is hashed too, and 16
    // connections over two backends all land on one with a chance of 2^-15.
    let backends = set(&[ThreeHosts::BACKEND, SECOND]);
    let hashed = answers(16, || http_body(&hosts.client, "10.96.0.21", 80));
    assert_eq!(hashed.len(), 1, "sh spread one client: {hashed:?}");
    let ported = answers(16, || http_body(&hosts.client, "10.96.0.22", 80));
    assert_eq!(
        ported, backends,
        "sh-port did not spread one client's ports"
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_ipv6_cluster_ip() {
    modules();
    let hosts = ThreeHosts::dual_stack();
    serve_name(&hosts.backend, ThreeHosts::BACKEND6, 8080);
    let vip = "fd00:96::10";
    let cluster = ClusterDir::for_node("ipv6", &[ThreeHosts::NODE, ThreeHosts::NODE6]);
    cluster.service(
        "web6",
        &format!(
            "{{clusterIP: \"{vip}\", clusterIPs: [\"{vip}\"], ipFamilies: [IPv6], \
             ipFamilyPolicy: SingleStack, ports: [{{name: http, port: 80, targetPort: 8080}}]}}"
        ),
    );
    cluster.local_endpoints(
        "web6",
        &[SlicePort::tcp("http", 8080)],
        &[ThreeHosts::BACKEND6],
    );
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    let real = format!(
        "-a -t [{vip}]:80 -r [{}]:8080 -m -w 1",
        ThreeHosts::BACKEND6
    );
    daemon.synced("the IPv6 virtual server", || {
        ipvs_table(&hosts.node).contains(&real)
    });
    let addrs = hosts
        .node
        .run(&["ip", "-o", "-6", "addr", "show", "dev", "kube-ipvs0"]);
    assert!(
        addrs.contains(&format!("{vip}/128")),
        "VIP not bound:\n{addrs}"
    );
    assert_eq!(http_body(&hosts.client, vip, 80), ThreeHosts::BACKEND6);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_endpoints_come_and_go_under_an_open_connection_until_deleted() {
    let hosts = two_name_backends();
    serve_echo(&hosts.backend, 7007);
    let cluster = ClusterDir::for_node("graceful", &[ThreeHosts::NODE]);
    cluster.service(
        "web",
        &format!(
            "{{clusterIP: {VIP}, ports: [{{name: http, port: 80, targetPort: 8080}}, \
             {{name: echo, port: 7, targetPort: 7007}}]}}"
        ),
    );
    let ports = [SlicePort::tcp("http", 8080), SlicePort::tcp("echo", 7007)];
    cluster.local_endpoints("web", &ports, &[ThreeHosts::BACKEND]);
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    let echo_rs = |addr: &str| format!("-a -t {VIP}:7 -r {addr}:7007 -m -w");
    daemon.synced("the echo virtual server", || {
        ipvs_table(&hosts.node).contains(&echo_rs(ThreeHosts::BACKEND))
    });
    // The only backend serves the long-lived connection.
    let mut conn = EchoConn::open(&hosts.client, VIP, 7);
    conn.check("before\n");

    // An endpoint is added: new connections use both, the open one stays.
    cluster.local_endpoints("web", &ports, &[ThreeHosts::BACKEND, SECOND]);
    daemon.eventually("the added real server", || {
        ipvs_table(&hosts.node).contains(&echo_rs(SECOND))
    });
    conn.check("after an endpoint was added\n");
    let both = set(&[ThreeHosts::BACKEND, SECOND]);
    assert_eq!(answers(4, || http_body(&hosts.client, VIP, 80)), both);

    // The connection's endpoint is removed: it drains at weight 0 and keeps
    // the open connection; new connections go to the other one.
    cluster.local_endpoints("web", &ports, &[SECOND]);
    let draining = format!("{} 0\n", echo_rs(ThreeHosts::BACKEND));
    daemon.eventually("the leaving real server to drain", || {
        ipvs_table(&hosts.node).contains(&draining)
    });
    conn.check("while draining\n");
    assert_eq!(
        answers(4, || http_body(&hosts.client, VIP, 80)),
        set(&[SECOND])
    );
    // Its HTTP real server has only closed connections: deleted. The echo
    // one stays as long as the connection is open.
    let http_leaving = format!("-r {}:8080", ThreeHosts::BACKEND);
    daemon.eventually("the drained HTTP real server to be deleted", || {
        !ipvs_table(&hosts.node).contains(&http_leaving)
    });
    daemon.next_sync();
    assert!(
        ipvs_table(&hosts.node).contains(&draining),
        "a real server with an open connection was deleted"
    );
    conn.check("still draining\n");

    // The connection closes: the next syncs delete the real server, long
    // before the drain timeout (60 s).
    drop(conn);
    let closed_at = daemon.syncs();
    daemon.eventually("the drained echo real server to be deleted", || {
        !ipvs_table(&hosts.node).contains(&echo_rs(ThreeHosts::BACKEND))
    });
    let syncs = daemon.syncs() - closed_at;
    assert!(
        syncs <= 3,
        "deleted only {syncs} syncs after the connection closed"
    );
    let table = ipvs_table(&hosts.node);
    assert!(
        table.contains(&format!("{} 1\n", echo_rs(SECOND))),
        "{table}"
    );
}

/// A Service `NS/NAME` created at `created`, with one HTTP port (80 to 8080) and `spec`'s
/// other fields (a YAML flow mapping's inside), and its endpoint `backend` on this node.
fn service_in(
    cluster: &ClusterDir,
    ns: &str,
    name: &str,
    created: &str,
    spec: &str,
    backend: &str,
) {
    cluster.write(
        &format!("{ns}-{name}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Service\n\
             metadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\n\
             spec: {{{spec}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n\
             ---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\n\
             endpoints: [{{addresses: [\"{backend}\"], nodeName: {}}}]\n",
            testkit::daemon::NODE_NAME
        ),
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_traffic_an_external_ip_does_not_take_kube_dns_address() {
    let hosts = two_name_backends();
    let cluster = ClusterDir::for_node("collision", &[ThreeHosts::NODE]);
    let dns = ThreeHosts::BACKEND;
    service_in(
        &cluster,
        "kube-system",
        "kube-dns",
        "2021-01-01T00:00:00Z",
        &format!("clusterIP: {VIP}"),
        dns,
    );
    // Older than kube-dns and first by name, declaring kube-dns's ClusterIP as its own.
    let intruder_vip = "10.96.0.20";
    service_in(
        &cluster,
        "aa",
        "intruder",
        "2020-01-01T00:00:00Z",
        &format!("clusterIP: {intruder_vip}, externalIPs: [{VIP}]"),
        SECOND,
    );
    let daemon = Daemon::start(&hosts.node, bin(), &cluster, QUICK_SYNC);
    daemon.synced("both virtual servers", || {
        let table = ipvs_table(&hosts.node);
        table.contains(&format!("-a -t {VIP}:80 -r {dns}:8080 "))
            && table.contains(&format!("-a -t {intruder_vip}:80 -r {SECOND}:8080 "))
    });
    assert!(
        !ipvs_table(&hosts.node).contains(&format!("-a -t {VIP}:80 -r {SECOND}:8080 ")),
        "the intruder's endpoint serves kube-dns's address:\n{}",
        ipvs_table(&hosts.node)
    );
    assert_eq!(
        answers(6, || http_body(&hosts.client, VIP, 80)),
        set(&[dns]),
        "kube-dns's address answered by someone else"
    );
    assert_eq!(
        answers(2, || http_body(&hosts.client, intruder_vip, 80)),
        set(&[SECOND]),
        "the intruder's own ClusterIP still works"
    );
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains(
            "Service aa/intruder: spec.externalIPs: tcp 10.96.0.10:80 \
            is not proxied for this Service: kube-system/kube-dns has it"
        )),
        "the loser is not named:\n{log}"
    );
}

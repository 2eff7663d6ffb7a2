//! kube-proxy's health check node ports end to end, on the host (no IPVS here, so the daemon
//! runs in the iptables fallback mode): `kube-ipvs-proxy --from-dir` in a "node" namespace,
//! and a load balancer's probes from a client namespace to the node's address on the
//! Service's `healthCheckNodePort`, while the test moves the endpoint, the port and the
//! traffic policy. Only the tests' own namespaces are touched.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use testkit::ThreeHosts;
use testkit::daemon::{ClusterDir, Daemon, NODE_NAME, QUICK_SYNC, SlicePort};

const HC_PORT: u16 = 32100;
const MOVED_PORT: u16 = 32101;
const TAKEN_PORT: u16 = 32200;

/// Writes Service `default/NAME`: a LoadBalancer with this `externalTrafficPolicy` and
/// health check node port.
fn load_balancer(cluster: &ClusterDir, name: &str, policy: &str, hc_port: u16) {
    let vip = if name == "lb" {
        "10.96.0.30"
    } else {
        "10.96.0.31"
    };
    cluster.service(
        name,
        &format!(
            "{{type: LoadBalancer, clusterIP: {vip}, externalTrafficPolicy: {policy}, \
             healthCheckNodePort: {hc_port}, \
             ports: [{{name: http, port: 80, targetPort: 8080}}]}}"
        ),
    );
}

/// The endpoint of Service `NAME` (the backend's address) on node `node`.
fn endpoint_on(cluster: &ClusterDir, name: &str, node: &str) {
    cluster.endpoints(
        name,
        &[SlicePort::tcp("http", 8080)],
        &[(ThreeHosts::BACKEND, node)],
    );
}

/// A probe from the client to the node's address on `port`: the whole response, or the
/// connection's error.
fn probe(hosts: &ThreeHosts, port: u16) -> std::io::Result<String> {
    let target = SocketAddr::new(ThreeHosts::NODE.parse().expect("address"), port);
    hosts
        .client
        .enter(|| testkit::http_request(target, "/any/path?probe=1"))
}

/// kube-proxy's body for Service `default/lb`.
fn body(local_endpoints: usize) -> String {
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"lb\"\n\t}},\n\
         \t\"localEndpoints\": {local_endpoints},\n\t\"serviceProxyHealthy\": true\n}}"
    )
}

/// Whether `response` has this status line start, header (lower case) and body.
fn answers(response: &str, status: &str, weight: usize, local_endpoints: usize) -> bool {
    let Some((head, content)) = response.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    head.starts_with(&format!("http/1.0 {status}"))
        && head.contains("\r\ncontent-type: application/json\r\n")
        && head.contains("\r\nx-content-type-options: nosniff\r\n")
        && head.contains(&format!(
            "\r\nx-load-balancing-endpoint-weight: {weight}\r\n"
        ))
        && content == body(local_endpoints)
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_service_health_check_node_port_follows_endpoints_port_and_policy() {
    let hosts = ThreeHosts::new();
    let cluster = ClusterDir::for_node("service-health", &[ThreeHosts::NODE]);
    load_balancer(&cluster, "lb", "Local", HC_PORT);
    endpoint_on(&cluster, "lb", NODE_NAME);
    // Another Service's health check port is held by someone else on the node.
    let _holder = hosts
        .node
        .enter(|| TcpListener::bind(("0.0.0.0", TAKEN_PORT)).expect("hold the taken port"));
    load_balancer(&cluster, "taken", "Local", TAKEN_PORT);
    endpoint_on(&cluster, "taken", NODE_NAME);
    let bin = Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"));
    let daemon = Daemon::start(&hosts.node, bin, &cluster, QUICK_SYNC);
    let answered = |port: u16, status: &str, local_endpoints: usize| {
        let reply = probe(&hosts, port);
        let ok = reply
            .as_ref()
            .is_ok_and(|r| answers(r, status, local_endpoints, local_endpoints));
        if !ok {
            eprintln!("port {port}: not yet {status} with {local_endpoints}: {reply:?}");
        }
        ok
    };

    daemon.eventually("200 with one local endpoint", || {
        answered(HC_PORT, "200", 1)
    });
    // In the same sync as the other Service's server opened (after it, by name).
    daemon.eventually("the taken port to be logged and counted", || {
        let log = daemon.log();
        log.lines().any(|l| {
            l.contains("failed to start the health check server")
                && l.contains("service=default/taken")
                && l.contains(&format!("port={TAKEN_PORT}"))
        }) && daemon
            .metric("kube_ipvs_proxy_sync_errors_total{kind=\"health_check_node_port\"}")
            .is_some_and(|n| n >= 1.0)
    });
    assert!(
        answered(HC_PORT, "200", 1),
        "the other Service's server is affected"
    );

    endpoint_on(&cluster, "lb", "node-2");
    daemon.eventually("503 once the endpoint is on another node", || {
        answered(HC_PORT, "503", 0)
    });
    endpoint_on(&cluster, "lb", NODE_NAME);
    daemon.eventually("200 again with the endpoint back", || {
        answered(HC_PORT, "200", 1)
    });

    load_balancer(&cluster, "lb", "Local", MOVED_PORT);
    daemon.eventually("the new port to answer", || answered(MOVED_PORT, "200", 1));
    let refused =
        |port: u16| probe(&hosts, port).is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused);
    assert!(refused(HC_PORT), "the old port still answers");

    load_balancer(&cluster, "lb", "Cluster", MOVED_PORT);
    daemon.eventually(
        "the port refused with externalTrafficPolicy Cluster",
        || refused(MOVED_PORT),
    );

    load_balancer(&cluster, "lb", "Local", MOVED_PORT);
    daemon.eventually("the port served again with Local", || {
        answered(MOVED_PORT, "200", 1)
    });
    cluster.remove("service-lb.yaml");
    daemon.eventually("the port refused once the Service is deleted", || {
        refused(MOVED_PORT)
    });
}

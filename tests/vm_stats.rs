//! The kernel's IPVS counters in `/metrics`, in the VM: HTTP requests from a
//! client namespace through a ClusterIP show up in the Service's and the
//! backend's counters, labelled with the Kubernetes names, with the values
//! the real `ipvsadm -Ln --stats --exact` shows for the same virtual and
//! real server, and as many connections as requests were sent; the backend's
//! series name the Pod its EndpointSlice names.

use std::path::Path;
use std::time::Duration;

use testkit::daemon::{ClusterDir, Daemon, NODE_NAME};
use testkit::{Netns, ThreeHosts, http_get, modprobe, serve_http};

const VIP: &str = "10.96.0.10";
const REQUESTS: u64 = 5;

/// `default/web`, port `http` 80→8080, one endpoint (the backend, Pod
/// `web-0`) on this node.
fn cluster() -> ClusterDir {
    let cluster = ClusterDir::new("stats");
    cluster.node(NODE_NAME, &[ThreeHosts::NODE]);
    cluster.service(
        "web",
        &format!("{{clusterIP: {VIP}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}"),
    );
    cluster.write(
        "slice-web.yaml",
        &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\n\
             endpoints:\n- addresses: [\"{}\"]\n  nodeName: {NODE_NAME}\n  \
             targetRef: {{kind: Pod, namespace: default, name: web-0}}\n",
            ThreeHosts::BACKEND
        ),
    );
    cluster
}

/// The five counters (Conns, InPkts, OutPkts, InBytes, OutBytes) of the
/// line of `ipvsadm -Ln --stats --exact` that starts with `row` (`TCP  VIP:80`
/// or `  -> RIP:PORT`), as the real tool prints them.
fn ipvsadm_stats(node: &Netns, row: &str) -> [u64; 5] {
    let text = node.run(&["ipvsadm", "-Ln", "--stats", "--exact"]);
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} in:\n{text}"));
    let numbers: Vec<u64> = line[row.len()..]
        .split_whitespace()
        .map(|n| n.parse().expect("a counter"))
        .collect();
    numbers
        .try_into()
        .unwrap_or_else(|n| panic!("not five counters in {line:?}: {n:?}"))
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_stats_traffic_shows_in_the_services_and_the_backends_counters() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let (node, backend, client) = (&hosts.node, &hosts.backend, &hosts.client);
    serve_http(backend, 8080, "hello from the backend");
    let cluster = cluster();
    let daemon = Daemon::start(
        node,
        Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy")),
        &cluster,
        &[
            "--ipvs-sync-period",
            "30s",
            "--ipvs-min-sync-period",
            "0s",
            "--ipvs-stats=backends",
        ],
    );
    daemon.eventually("the real server", || {
        node.run(&["ipvsadm", "-Sn"])
            .contains(&format!("-a -t {VIP}:80 -r {}:8080", ThreeHosts::BACKEND))
    });
    for _ in 0..REQUESTS {
        let reply = http_get(client, VIP, 80).expect("an answer through the virtual server");
        assert!(reply.contains("hello from the backend"), "{reply}");
    }
    // Every connection closed (the last FIN and ACK counted), and the
    // statistics read after the traffic: a scrape reads the kernel again once
    // its last read is older than 5 s.
    std::thread::sleep(Duration::from_secs(6));
    let service = ipvsadm_stats(node, &format!("TCP  {VIP}:80"));
    let real = ipvsadm_stats(node, &format!("  -> {}:8080", ThreeHosts::BACKEND));
    assert_eq!(
        service[0], REQUESTS,
        "ipvsadm counts one connection per request"
    );

    let labels = format!(
        "namespace=\"default\",service=\"web\",port=\"http\",protocol=\"tcp\",ip_family=\"IPv4\",\
         virtual_server=\"{VIP}:80\""
    );
    let endpoint = format!(
        "{labels},endpoint=\"{}:8080\",pod=\"web-0\"",
        ThreeHosts::BACKEND
    );
    let metrics = daemon.metrics();
    let value = |series: String| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
            .trim()
            .parse()
            .expect("a counter")
    };
    let names = [
        "connections",
        "packets_in",
        "packets_out",
        "bytes_in",
        "bytes_out",
    ];
    for (i, name) in names.into_iter().enumerate() {
        assert_eq!(
            value(format!("kube_ipvs_proxy_service_{name}_total{{{labels}}}")),
            service[i],
            "{name} of the virtual server, against ipvsadm"
        );
        assert_eq!(
            value(format!(
                "kube_ipvs_proxy_backend_{name}_total{{{endpoint}}}"
            )),
            real[i],
            "{name} of the real server, against ipvsadm"
        );
    }
    assert!(
        service[3] > 0 && service[4] > 0,
        "bytes both ways: {service:?}"
    );
    // The connections are over: none active (TIME_WAIT ones count as inactive).
    assert_eq!(
        value(format!(
            "kube_ipvs_proxy_backend_active_connections{{{endpoint}}}"
        )),
        0
    );
    daemon.stop();
}

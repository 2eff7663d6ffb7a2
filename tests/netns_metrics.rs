//! kube-proxy's metrics from the running daemon, in the iptables fallback on this host (no
//! IPVS here): the network programming latency of an EndpointSlice change measured from the
//! `endpoints.kubernetes.io/last-change-trigger-time` the test wrote, the change counters,
//! a `Local` Service without a local endpoint counted, and a failing `iptables-restore`
//! counted. Only the tests' own namespaces are touched.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use testkit::Netns;
use testkit::apiserver::FakeApiServer;
use testkit::daemon::{ClusterDir, Daemon, SHORT_SYNC, SlicePort};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// EndpointSlice `default/NAME-1` of Service `NAME`: one ready endpoint on `node`, and the
/// trigger time annotation when given.
fn slice(name: &str, address: &str, node: &str, trigger: Option<SystemTime>) -> Value {
    let mut metadata = json!({"name": format!("{name}-1"), "namespace": "default",
                              "labels": {"kubernetes.io/service-name": name}});
    if let Some(t) = trigger {
        // The EndpointSlice controller writes RFC 3339 with nanoseconds, in UTC.
        let stamp = humantime::format_rfc3339_nanos(t).to_string();
        metadata["annotations"] =
            json!({"endpoints.kubernetes.io/last-change-trigger-time": stamp});
    }
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata,
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": [address], "nodeName": node, "conditions": {"ready": true}}]})
}

fn service(name: &str, cluster_ip: &str, extra: Value) -> Value {
    let mut spec = json!({"clusterIP": cluster_ip,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]});
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_metrics_network_programming_changes_and_no_local_endpoints() {
    let ns = Netns::new("metrics");
    ns.run(&["ip", "addr", "add", "192.168.7.1/24", "dev", "lo"]);
    let api = FakeApiServer::start(
        ns.enter(|| TcpListener::bind("127.0.0.1:0").expect("bind in the namespace")),
    );
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.7.1"}]}}),
    );
    api.apply(service("web", "10.96.0.10", json!({})));
    api.apply(slice("web", "10.244.1.5", "node-1", None));
    // internalTrafficPolicy Local, its one endpoint on another node: kube-proxy counts it.
    api.apply(service(
        "local",
        "10.96.0.11",
        json!({"internalTrafficPolicy": "Local"}),
    ));
    api.apply(slice("local", "10.244.2.5", "node-2", None));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), None);
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);
    daemon.eventually_within(Duration::from_secs(60), "the first sync", || {
        daemon.syncs() > 0
    });
    daemon.eventually("the first complete sync", || {
        daemon
            .metric(r#"kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}"#)
            .is_some()
    });
    let internal = r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal",ip_family="IPv4"}"#;
    assert_eq!(daemon.metric(internal), Some(1.0));
    let external = r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external",ip_family="IPv4"}"#;
    assert_eq!(daemon.metric(external), Some(0.0));
    // The first listing's slices carry no trigger time: nothing observed.
    let count = r#"kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"}"#;
    assert_eq!(daemon.metric(count), None);

    // The controller changed the slice 1.5 s before it reaches the API server (and after
    // the daemon started): the latency observed is at least that.
    std::thread::sleep(Duration::from_secs(2));
    let trigger = SystemTime::now() - Duration::from_millis(1500);
    api.apply(slice("web", "10.244.1.6", "node-1", Some(trigger)));
    daemon.eventually("the slice change programmed", || {
        ns.run(&["iptables-save", "-t", "nat"])
            .contains("10.244.1.6:8080")
    });
    daemon.eventually("the latency observed", || daemon.metric(count) == Some(1.0));
    let sum = daemon
        .metric(r#"kubeproxy_network_programming_duration_seconds_sum{ip_family="IPv4"}"#)
        .expect("sum");
    assert!((1.5..30.0).contains(&sum), "latency {sum} s");
    let at_most_one =
        r#"kubeproxy_network_programming_duration_seconds_bucket{le="1.0",ip_family="IPv4"}"#;
    assert_eq!(daemon.metric(at_most_one), Some(0.0));

    // Every event counted: 2 slices listed, 1 update; 2 Services listed. Nothing pending
    // once synced.
    assert_eq!(
        daemon.metric("kubeproxy_sync_proxy_rules_endpoint_changes_total"),
        Some(3.0)
    );
    assert_eq!(
        daemon.metric("kubeproxy_sync_proxy_rules_service_changes_total"),
        Some(2.0)
    );
    daemon.eventually("nothing pending", || {
        daemon.metric("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == Some(0.0)
    });
    let text = daemon.metrics();
    for present in [
        "kubernetes_build_info{",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
        r#"kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"}"#,
    ] {
        assert!(text.contains(present), "no {present} in:\n{text}");
    }
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_metrics_restore_failures_counted_with_a_broken_restore() {
    let ns = Netns::new("restorefail");
    ns.run(&["ip", "addr", "add", "192.168.7.1/24", "dev", "lo"]);
    let cluster = ClusterDir::for_node("restorefail", &["192.168.7.1"]);
    cluster.service(
        "web",
        "{clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}",
    );
    cluster.local_endpoints("web", &[SlicePort::tcp("http", 8080)], &["10.244.1.5"]);
    // An iptables-restore that refuses every input, first on the daemon's PATH; every
    // other tool is the host's.
    let tools = tempfile::tempdir().expect("tempdir");
    for name in ["iptables-nft-restore", "iptables-legacy-restore"] {
        let path = tools.path().join(name);
        std::fs::write(
            &path,
            "#!/bin/sh\ncat >/dev/null\necho 'iptables-restore: line 2 failed' >&2\nexit 1\n",
        )
        .expect("write the tool");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let path = format!("{}:$PATH", tools.path().display());
    let daemon = Daemon::start_with_env(&ns, bin(), &cluster, &[("PATH", &path)], SHORT_SYNC);
    let failures =
        r#"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"}"#;
    daemon.eventually_within(Duration::from_secs(60), "two failed syncs", || {
        daemon.syncs() >= 2 && daemon.metric(failures).is_some_and(|n| n >= 2.0)
    });
    // The first sync runs on the change of the first listing: a partial one.
    let partial =
        r#"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="IPv4"}"#;
    assert!(daemon.metric(partial).is_some_and(|n| n >= 1.0));
    // Never a complete sync: no last timestamp, and /healthz not ok once 2 x syncPeriod
    // have passed.
    assert_eq!(
        daemon.metric(r#"kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}"#),
        None
    );
    assert!(daemon.healthz().contains("\"lastUpdated\":null"));
    daemon.eventually("/healthz 503", || daemon.healthz().contains(" 503 "));
}

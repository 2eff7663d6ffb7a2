//! A synthetic cluster for the incremental tests and the benchmark: `services` Services of
//! namespace `bench`, every tenth a NodePort, each with one EndpointSlice of `endpoints`
//! ready endpoints spread over three nodes, seen from node `node-0`.

#![allow(dead_code)] // each test binary uses a part

use desired::NodeInfo;
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use serde_json::json;

/// The node the cluster is seen from.
pub(crate) const NODE: &str = "node-0";

/// This node as the generator sees it.
pub(crate) fn node_info() -> NodeInfo {
    NodeInfo {
        name: NODE.to_owned(),
        zone: None,
        primary_ips: vec!["172.18.0.2".parse().expect("ip")],
        addresses: ["172.18.0.2".parse().expect("ip")].into_iter().collect(),
    }
}

/// An address in 10.96.0.0/12 (Services) or 10.128.0.0/9 (pods) numbered `n`.
fn addr(base: u8, n: usize) -> String {
    format!(
        "10.{}.{}.{}",
        usize::from(base) + (n >> 16),
        (n >> 8) & 255,
        n & 255
    )
}

/// Service number `i`.
pub(crate) fn service(i: usize) -> Object {
    let node_port = i.is_multiple_of(10);
    let mut port = json!({"name": "http", "port": 80, "protocol": "TCP"});
    if node_port {
        port["nodePort"] = json!(30000 + i % 2000);
    }
    let svc = json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": {
            "type": if node_port { "NodePort" } else { "ClusterIP" },
            "clusterIP": addr(96, i),
            "ports": [port],
        },
    });
    Object::Service(Box::new(serde_json::from_value(svc).expect("service")))
}

/// The EndpointSlice of Service `i` with `endpoints` endpoints, the first one `first`.
pub(crate) fn slice(i: usize, first: usize, endpoints: usize) -> Object {
    let eps: Vec<_> = (first..first + endpoints)
        .map(|e| {
            json!({
                "addresses": [addr(128, i * 8 + e)],
                "nodeName": format!("node-{}", e % 3),
            })
        })
        .collect();
    let slice = json!({
        "metadata": {
            "name": format!("svc-{i}-abcde"),
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    });
    Object::EndpointSlice(Box::new(serde_json::from_value(slice).expect("slice")))
}

/// A synced model of `services` Services with `endpoints` endpoints each.
pub(crate) fn model(services: usize, endpoints: usize) -> Model {
    let mut model = Model::new(ProxyFilter::default(), None);
    model.apply(SourceEvent::Listed(
        Kind::Service,
        (0..services).map(service).collect(),
    ));
    model.apply(SourceEvent::Listed(
        Kind::EndpointSlice,
        (0..services).map(|i| slice(i, 0, endpoints)).collect(),
    ));
    model.apply(SourceEvent::Listed(Kind::Node, Vec::new()));
    assert!(model.is_synced());
    model.take_changes();
    model
}

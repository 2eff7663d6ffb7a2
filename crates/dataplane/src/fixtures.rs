//! Services and EndpointSlices for whole-sync tests, as the API server
//! serves them.

use desired::NodeInfo;
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};

/// The node the tests run as: `node-1`, 192.168.7.1, IPv4 only.
pub(crate) fn node() -> NodeInfo {
    let ip = "192.168.7.1".parse().expect("address");
    NodeInfo {
        name: "node-1".into(),
        zone: None,
        primary_ips: vec![ip],
        addresses: [ip].into(),
    }
}

/// Service `default/{name}` with ClusterIP `ip` and one port `port` of `protocol`.
pub(crate) fn service(name: &str, ip: &str, protocol: &str, port: u16) -> Object {
    Object::Service(Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"name": "p", "port": port, "protocol": protocol, "targetPort": 8080}]},
        }))
        .expect("a Service"),
    ))
}

/// The EndpointSlice of Service `name`: ready endpoints `addresses` on port 8080.
pub(crate) fn slice(name: &str, protocol: &str, addresses: &[&str]) -> Object {
    let endpoints: Vec<_> = addresses
        .iter()
        .map(|a| serde_json::json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    Object::EndpointSlice(Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "p", "port": 8080, "protocol": protocol}],
        }))
        .expect("an EndpointSlice"),
    ))
}

/// A model holding `objects`, listed as a source lists them.
pub(crate) fn model(objects: Vec<Object>) -> Model {
    let mut model = Model::new(ProxyFilter::default(), None);
    let (services, slices): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| matches!(o, Object::Service(_)));
    model.apply(SourceEvent::Listed(Kind::Service, services));
    model.apply(SourceEvent::Listed(Kind::EndpointSlice, slices));
    model
}

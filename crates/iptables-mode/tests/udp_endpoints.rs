//! The UDP destinations the generator reports for conntrack cleanup: every address a
//! Service's UDP port answers on, with the addresses of its serving endpoints, whatever
//! the traffic policies (kube-proxy's `CleanStaleEntries`).

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::{Config, NodeInfo};
use iptables_mode::{Generator, Options};
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn set(addresses: &[&str]) -> BTreeSet<IpAddr> {
    addresses.iter().map(|a| ip(a)).collect()
}

#[test]
fn cluster_ips_of_both_families_with_every_serving_endpoint() {
    let udp = common::cluster_defaults().generator().udp_endpoints();
    assert_eq!(
        udp[&(ip("10.96.0.53"), 53)],
        set(&["10.244.1.53", "10.244.2.53"])
    );
    // Not ready but serving (the condition is absent) counts: its flows are not stale.
    assert_eq!(
        udp[&(ip("10.96.0.10"), 514)],
        set(&["10.244.1.10", "10.244.2.9", "10.244.2.10", "10.244.3.10"])
    );
    assert_eq!(
        udp[&(ip("fd00:96::10"), 514)],
        set(&["fd00:244:1::10", "fd00:244:2::10"])
    );
    // internalTrafficPolicy Local on a node without a local endpoint: its flows to the
    // remote one were made before, and a policy must not cut them.
    assert_eq!(udp[&(ip("10.96.0.30"), 5353)], set(&["10.244.2.30"]));
    // TCP and SCTP ports are not there.
    assert!(!udp.contains_key(&(ip("10.96.0.10"), 80)));
    assert_eq!(udp.len(), 4, "{udp:?}");
}

#[test]
fn external_load_balancer_and_node_addresses_and_no_serving_endpoint() {
    let service = |name: &str, cluster_ip: &str, extra: serde_json::Value| {
        let mut spec = json!({
            "type": "LoadBalancer",
            "clusterIP": cluster_ip,
            "externalIPs": ["192.0.2.7"],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}],
        });
        spec.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        Object::Service(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d"},
                "spec": spec,
                "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
            }))
            .expect("a Service"),
        ))
    };
    let slice = |name: &str, endpoints: serde_json::Value| {
        Object::EndpointSlice(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "d",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
                "endpoints": endpoints,
            }))
            .expect("an EndpointSlice"),
        ))
    };
    let mut model = Model::new(ProxyFilter::default(), None);
    model.apply(SourceEvent::Listed(Kind::Node, vec![]));
    model.apply(SourceEvent::Listed(
        Kind::Service,
        vec![
            service(
                "dns",
                "10.96.0.53",
                json!({"externalTrafficPolicy": "Local"}),
            ),
            service(
                "gone",
                "10.96.0.54",
                json!({"externalIPs": [], "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            ),
        ],
    ));
    model.apply(SourceEvent::Listed(
        Kind::EndpointSlice,
        vec![
            slice(
                "dns",
                json!([
                    {"addresses": ["10.244.1.5"], "nodeName": "elsewhere"},
                    {"addresses": ["10.244.1.6"], "nodeName": "elsewhere",
                     "conditions": {"ready": false, "serving": false, "terminating": true}},
                ]),
            ),
            slice(
                "gone",
                json!([{"addresses": ["10.244.1.7"], "conditions": {"serving": false}}]),
            ),
        ],
    ));
    assert!(model.is_synced());
    let node = NodeInfo {
        addresses: set(&["172.18.0.2", "192.168.7.2", "fd00:18::2"]),
        ..common::node_info()
    };
    let udp = Generator::new(Config::default(), Options::default(), node, &model).udp_endpoints();
    let serving = set(&["10.244.1.5"]);
    let expected = [
        (ip("10.96.0.53"), 53),
        (ip("192.0.2.7"), 53),
        (ip("203.0.113.9"), 53),
        // The node port on every IPv4 node address (externalTrafficPolicy Local does not
        // change which flows are stale).
        (ip("172.18.0.2"), 30053),
        (ip("192.168.7.2"), 30053),
    ]
    .into_iter()
    .map(|destination| (destination, serving.clone()))
    .collect();
    // `gone` has no serving endpoint: left out.
    assert_eq!(udp, expected);
}

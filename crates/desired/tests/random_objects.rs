//! Property tests with random Services and EndpointSlices, valid and invalid mixed:
//! - nothing panics, whatever the objects contain;
//! - the incrementally updated desired state always equals the one computed from scratch.

use desired::{Config, DesiredState, NodeInfo};
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Mostly valid IPv4, some IPv6, a little garbage.
fn ip() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => (1u8..6).prop_map(|i| json!(format!("10.96.0.{i}"))),
        4 => (1u8..4).prop_map(|i| json!(format!("fd00::{i}"))),
        1 => Just(json!("not-an-ip")),
        1 => Just(json!("300.1.1.1")),
    ]
}

/// Cluster IPs: mostly one IPv4 or a dual-stack pair, sometimes anything.
fn cluster_ips() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        8 => ip().prop_map(|ip| vec![ip]),
        3 => ((1u8..6), (1u8..4)).prop_map(|(a, b)| vec![json!(format!("10.96.0.{a}")), json!(format!("fd00::{b}"))]),
        1 => prop::collection::vec(ip(), 0..4),
        1 => Just(vec![json!("None")]),
    ]
}

/// An endpoint address of the slice's family, rarely garbage.
fn endpoint_ip(family: &'static str) -> impl Strategy<Value = Value> {
    let valid = (1u8..8).prop_map(move |i| match family {
        "IPv6" => json!(format!("fd00:244::{i}")),
        _ => json!(format!("10.244.1.{i}")),
    });
    prop_oneof![12 => valid, 1 => Just(json!("bogus")), 1 => Just(json!("fd00:244::99"))]
}

fn port() -> impl Strategy<Value = i32> {
    prop_oneof![30 => 80..83i32, 1 => Just(0), 1 => Just(-5), 1 => Just(70_000)]
}

fn protocol() -> impl Strategy<Value = Value> {
    prop_oneof![
        16 => Just(Value::Null),
        8 => Just(json!("TCP")),
        4 => Just(json!("UDP")),
        2 => Just(json!("SCTP")),
        1 => Just(json!("ICMP")),
    ]
}

fn port_name() -> impl Strategy<Value = Value> {
    prop_oneof![6 => Just(Value::Null), 1 => Just(json!("a")), 1 => Just(json!("b"))]
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn service() -> impl Strategy<Value = Value> {
    let ports = prop::collection::vec(
        (
            port_name(),
            port(),
            protocol(),
            maybe(prop_oneof![4 => Just(30000), 4 => Just(30001), 1 => Just(0), 1 => Just(99999)]),
        ),
        0..3,
    );
    (
        0u8..5,
        maybe(prop_oneof![
            4 => Just("ClusterIP"), 3 => Just("NodePort"), 3 => Just("LoadBalancer"),
            1 => Just("ExternalName"), 1 => Just("Bogus")
        ]),
        cluster_ips(),
        ports,
        prop::collection::vec(ip(), 0..2),
        prop::collection::vec((ip(), maybe(prop_oneof![Just("VIP"), Just("Proxy")])), 0..2),
        prop::collection::vec(
            prop_oneof![4 => Just("192.0.2.0/24"), 4 => Just("172.16.0.0/12"), 2 => Just("fd00::/64"), 1 => Just("nope")],
            0..2,
        ),
        (
            maybe(prop_oneof![8 => Just("Local"), 8 => Just("Cluster"), 1 => Just("Weird")]),
            maybe(prop_oneof![Just("Local"), Just("Cluster")]),
        ),
        (
            maybe(prop_oneof![Just("ClientIP"), Just("None")]),
            maybe(prop_oneof![16 => Just(60), 1 => Just(0), 1 => Just(100_000)]),
        ),
        maybe(prop_oneof![Just("sh"), Just("mh"), Just("bogus")]),
        maybe(prop_oneof![Just(32000), Just(0), Just(-1)]),
    )
        .prop_map(|(n, ty, cips, ports, ext, ingress, ranges, (etp, itp), (aff, timeout), sched, hc)| {
            let ports: Vec<Value> = ports
                .into_iter()
                .map(|(name, port, proto, np)| json!({"name": name, "port": port, "protocol": proto, "nodePort": np}))
                .collect();
            let ingress: Vec<Value> = ingress.into_iter().map(|(ip, mode)| json!({"ip": ip, "ipMode": mode})).collect();
            let annotations = sched.map(|s| json!({"kube-ipvs-proxy.io/ipvs-scheduler": s}));
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("s{n}"), "namespace": "ns", "annotations": annotations},
                "spec": {
                    "type": ty, "clusterIPs": cips, "ports": ports, "externalIPs": ext,
                    "loadBalancerSourceRanges": ranges, "externalTrafficPolicy": etp,
                    "internalTrafficPolicy": itp, "sessionAffinity": aff,
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}},
                    "healthCheckNodePort": hc,
                },
                "status": {"loadBalancer": {"ingress": ingress}},
            })
        })
}

fn slice() -> impl Strategy<Value = Value> {
    prop_oneof![10 => Just("IPv4"), 3 => Just("IPv6"), 1 => Just("FQDN"), 1 => Just("IPX")]
        .prop_flat_map(slice_of)
}

fn slice_of(family: &'static str) -> impl Strategy<Value = Value> {
    let endpoint = (
        endpoint_ip(family),
        (
            maybe(any::<bool>()),
            maybe(any::<bool>()),
            maybe(any::<bool>()),
        ),
        maybe(prop_oneof![Just("n1"), Just("n2")]),
        maybe(prop_oneof![Just("zone-a"), Just("zone-b")]),
    )
        .prop_map(|(ip, (ready, serving, terminating), node, zone)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "nodeName": node,
                "hints": zone.map(|z| json!({"forZones": [{"name": z}]})),
            })
        });
    (
        0u8..6,
        prop_oneof![8 => (0u8..5).prop_map(Some), 1 => Just(None)],
        prop::collection::vec((port_name(), prop_oneof![8 => port().prop_map(Some), 1 => Just(None)], protocol()), 1..3),
        prop::collection::vec(endpoint, 0..4),
    )
        .prop_map(move |(n, svc, ports, endpoints)| {
            let ports: Vec<Value> =
                ports.into_iter().map(|(name, port, proto)| json!({"name": name, "port": port, "protocol": proto})).collect();
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("e{n}"), "namespace": "ns",
                             "labels": svc.map(|s| json!({"kubernetes.io/service-name": format!("s{s}")}))},
                "addressType": family, "ports": ports, "endpoints": endpoints,
            })
        })
}

fn event() -> impl Strategy<Value = SourceEvent> {
    prop_oneof![
        5 => service().prop_map(|v| SourceEvent::Applied(Object::Service(Box::new(serde_json::from_value(v).expect("service json"))))),
        4 => slice().prop_map(|v| SourceEvent::Applied(Object::EndpointSlice(Box::new(serde_json::from_value(v).expect("slice json"))))),
        1 => service().prop_map(|v| SourceEvent::Deleted(Object::Service(Box::new(serde_json::from_value(v).expect("service json"))))),
        1 => slice().prop_map(|v| SourceEvent::Deleted(Object::EndpointSlice(Box::new(serde_json::from_value(v).expect("slice json"))))),
    ]
}

fn node() -> Object {
    Object::Node(Box::new(
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                     {"type": "InternalIP", "address": "fd00:18::2"}]},
        }))
        .expect("node json"),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn incremental_state_equals_state_from_scratch(events in prop::collection::vec(event(), 1..40)) {
        let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
        model.apply(SourceEvent::Listed(Kind::Node, vec![node()]));
        model.apply(SourceEvent::Listed(Kind::Service, Vec::new()));
        model.apply(SourceEvent::Listed(Kind::EndpointSlice, Vec::new()));
        let info = NodeInfo::from_node("n1", model.node(), &[]);
        let config = Config::default();
        let mut state = DesiredState::new(config.clone(), info.clone(), &model);
        let _ = model.take_changes();
        for event in events {
            let _warnings = model.apply(event);
            let changes = model.take_changes();
            state.update(&model, &changes, &info);
            let fresh = DesiredState::new(config.clone(), info.clone(), &model);
            prop_assert_eq!(desired::render::text(&state).expect("text"), desired::render::text(&fresh).expect("text"));
        }
    }
}

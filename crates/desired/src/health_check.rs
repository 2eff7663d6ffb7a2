//! kube-proxy's per-Service health check node ports: which Services get an HTTP server on
//! their `spec.healthCheckNodePort`, where it listens, and how many local endpoints it reports.
//!
//! kube-proxy feeds its `ServiceHealthServer` on every successful sync with
//! `svcPortMap.HealthCheckNodePorts()` (every Service whose `healthCheckNodePort` it keeps:
//! LoadBalancer, `externalTrafficPolicy: Local`, non-zero port) and
//! `endpointsMap.LocalReadyEndpoints()`: per Service, the number of distinct endpoint **IPs**
//! (not `ip:port`: a Pod behind two ports counts once) that are ready (`conditions.ready`
//! absent or true; a terminating endpoint is never ready) and on this node (`nodeName` equal
//! to this node's non-empty name), over every port of every EndpointSlice of the Service in
//! the proxier's family. This module computes the same map, for both proxy modes; the daemon
//! opens and closes the listeners.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use model::{IpFamily, Model, ObjectId, Service};
use serde::Serialize;

use crate::config::{NodeInfo, NodePortAddresses};

/// Where a health check server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Listen {
    /// Every address of the node, both families (one wildcard socket): `nodePortAddresses`
    /// is empty.
    All,
    /// These node addresses, the ones `nodePortAddresses` selects (the same as NodePorts get)
    /// in the families the Service is proxied in.
    Addresses(Vec<IpAddr>),
}

/// One Service's health check server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `spec.healthCheckNodePort`.
    pub port: u16,
    /// Where it listens.
    pub listen: Listen,
    /// The number of distinct ready endpoint IPs on this node (`localEndpoints`).
    pub local_endpoints: usize,
}

/// The health check servers this node must run, by Service.
///
/// A Service gets one when the model kept its `healthCheckNodePort` (see
/// [`Service::health_check_node_port`]), it has at least one port, and it is proxied in one
/// of this node's families. Its endpoints are counted in the first family of its cluster IPs
/// that the node proxies (kube-proxy runs one health server per family, each counting its own
/// family's endpoints; with dual-stack Pods the counts agree).
pub fn health_checks(
    model: &Model,
    node: &NodeInfo,
    addresses: &NodePortAddresses,
) -> BTreeMap<ObjectId, HealthCheck> {
    let families = node.families();
    model
        .services()
        .filter(|svc| !svc.ports.is_empty())
        .filter_map(|svc| {
            let port = svc.health_check_node_port?;
            let served: Vec<IpFamily> = svc
                .cluster_ips
                .iter()
                .map(IpFamily::of)
                .filter(|f| families.contains(f))
                .collect();
            let counted = *served.first()?;
            let listen = match addresses {
                NodePortAddresses::All => Listen::All,
                which => Listen::Addresses(
                    served
                        .iter()
                        .flat_map(|f| node.node_port_ips(*f, which))
                        .collect(),
                ),
            };
            let check = HealthCheck {
                port,
                listen,
                local_endpoints: local_ready_endpoints(model, svc, counted, &node.name),
            };
            Some((svc.id.clone(), check))
        })
        .collect()
}

/// kube-proxy's `LocalReadyEndpoints()` for one Service and family.
fn local_ready_endpoints(model: &Model, svc: &Service, family: IpFamily, node_name: &str) -> usize {
    if node_name.is_empty() {
        return 0;
    }
    let ips: BTreeSet<IpAddr> = model
        .slices_of(&svc.id)
        .filter(|s| s.family == family && !s.ports.is_empty())
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.ready && e.node_name.as_deref() == Some(node_name))
        .map(|e| e.addr)
        .collect();
    ips.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Kind, Object, ProxyFilter, SourceEvent};
    use serde_json::{Value, json};

    const NODE: &str = "node-1";

    /// A Service `d/NAME`: LoadBalancer, `externalTrafficPolicy: Local`, health check node
    /// port 32000, ports http 80 and https 443, patched with `patch`.
    fn service(name: &str, patch: Value) -> Object {
        let mut spec = json!({
            "type": "LoadBalancer", "clusterIP": "10.96.0.1",
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                      {"name": "https", "port": 443, "nodePort": 30443}],
        });
        for (k, v) in patch.as_object().expect("object") {
            spec[k] = v.clone();
        }
        Object::Service(Box::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "d"}, "spec": spec}),
            )
            .expect("service"),
        ))
    }

    /// An endpoint `(address, node, ready, terminating)`.
    type Ep<'a> = (&'a str, &'a str, bool, bool);

    /// EndpointSlice `NAME` of Service `d/SERVICE` with these ports and endpoints.
    fn slice(name: &str, service: &str, ports: &[(&str, u16)], endpoints: &[Ep<'_>]) -> Object {
        let family = if endpoints.first().is_some_and(|e| e.0.contains(':')) {
            "IPv6"
        } else {
            "IPv4"
        };
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"}))
            .collect();
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|(a, node, ready, terminating)| {
                json!({"addresses": [a], "nodeName": node,
                       "conditions": {"ready": ready, "serving": true, "terminating": terminating}})
            })
            .collect();
        Object::EndpointSlice(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": family, "ports": ports, "endpoints": endpoints,
            }))
            .expect("slice"),
        ))
    }

    fn model(services: Vec<Object>, slices: Vec<Object>) -> Model {
        let mut model = Model::new(ProxyFilter::default(), None);
        model.apply(SourceEvent::Listed(Kind::Service, services));
        model.apply(SourceEvent::Listed(Kind::EndpointSlice, slices));
        model
    }

    fn node(addresses: &[&str]) -> NodeInfo {
        let ips: Vec<IpAddr> = addresses.iter().map(|a| a.parse().expect("ip")).collect();
        NodeInfo {
            name: NODE.into(),
            zone: None,
            primary_ips: ips.clone(),
            addresses: ips.into_iter().collect(),
        }
    }

    /// A health check's port and count of local endpoints.
    type PortCount = (u16, usize);

    /// `Service name → (port, local endpoints)` with every node address listening.
    fn counts(services: Vec<Object>, slices: Vec<Object>) -> BTreeMap<String, PortCount> {
        let node = node(&["192.168.7.1"]);
        health_checks(&model(services, slices), &node, &NodePortAddresses::All)
            .into_iter()
            .map(|(id, hc)| {
                assert_eq!(hc.listen, Listen::All);
                (id.name.to_string(), (hc.port, hc.local_endpoints))
            })
            .collect()
    }

    const BOTH: &[(&str, u16)] = &[("http", 8080), ("https", 8443)];

    #[test]
    fn local_ready_endpoints_are_counted_by_distinct_ip() {
        let cases: Vec<(&str, Vec<Object>, usize)> = vec![
            (
                "one local ready endpoint behind two ports counts once",
                vec![slice(
                    "s-1",
                    "s",
                    BOTH,
                    &[("10.244.1.5", NODE, true, false)],
                )],
                1,
            ),
            (
                "an endpoint on another node does not count",
                vec![slice(
                    "s-1",
                    "s",
                    BOTH,
                    &[
                        ("10.244.1.5", NODE, true, false),
                        ("10.244.2.5", "node-2", true, false),
                    ],
                )],
                1,
            ),
            (
                "not ready, or terminating (even if serving), does not count",
                vec![slice(
                    "s-1",
                    "s",
                    BOTH,
                    &[
                        ("10.244.1.5", NODE, false, false),
                        ("10.244.1.6", NODE, false, true),
                    ],
                )],
                0,
            ),
            (
                "one IP with different ports in two slices counts once; distinct IPs add up",
                vec![
                    slice(
                        "s-1",
                        "s",
                        &[("http", 8080)],
                        &[("10.244.1.5", NODE, true, false)],
                    ),
                    slice(
                        "s-2",
                        "s",
                        &[("https", 8443)],
                        &[
                            ("10.244.1.5", NODE, true, false),
                            ("10.244.1.7", NODE, true, false),
                        ],
                    ),
                ],
                2,
            ),
            (
                "a slice without ports contributes nothing",
                vec![slice("s-1", "s", &[], &[("10.244.1.5", NODE, true, false)])],
                0,
            ),
            (
                "another Service's local endpoints do not count",
                vec![slice(
                    "o-1",
                    "other",
                    BOTH,
                    &[("10.244.1.5", NODE, true, false)],
                )],
                0,
            ),
        ];
        for (what, slices, expected) in cases {
            let got = counts(vec![service("s", json!({}))], slices);
            assert_eq!(got.get("s"), Some(&(32000, expected)), "{what}");
        }
    }

    #[test]
    fn only_load_balancers_with_local_external_policy_get_one() {
        let local = || {
            vec![slice(
                "s-1",
                "s",
                BOTH,
                &[("10.244.1.5", NODE, true, false)],
            )]
        };
        let cases: Vec<(&str, Value, Option<PortCount>)> = vec![
            ("LoadBalancer, Local", json!({}), Some((32000, 1))),
            (
                "externalTrafficPolicy Cluster",
                json!({"externalTrafficPolicy": "Cluster"}),
                None,
            ),
            ("NodePort with Local", json!({"type": "NodePort"}), None),
            (
                "no healthCheckNodePort",
                json!({"healthCheckNodePort": null}),
                None,
            ),
            ("no ports", json!({"ports": []}), None),
            (
                "an IPv6 Service on an IPv4 node",
                json!({"clusterIP": "fd00:96::1"}),
                None,
            ),
            (
                "another port",
                json!({"healthCheckNodePort": 32001}),
                Some((32001, 1)),
            ),
        ];
        for (what, patch, expected) in cases {
            let got = counts(vec![service("s", patch)], local());
            assert_eq!(got.get("s").copied(), expected, "{what}");
        }
    }

    #[test]
    fn a_dual_stack_service_counts_its_primary_family_and_listens_where_node_ports_do() {
        let dual = service(
            "s",
            json!({"clusterIPs": ["fd00:96::1", "10.96.0.1"], "clusterIP": "fd00:96::1"}),
        );
        let slices = vec![
            slice(
                "s-4",
                "s",
                BOTH,
                &[
                    ("10.244.1.5", NODE, true, false),
                    ("10.244.1.6", NODE, true, false),
                ],
            ),
            slice("s-6", "s", BOTH, &[("fd00:244::5", NODE, true, false)]),
        ];
        let model = model(vec![dual], slices);
        let node = node(&["192.168.7.1", "fd00:7::1"]);
        let select = NodePortAddresses::Select {
            cidrs: vec!["192.168.7.0/24".parse().expect("cidr")],
            primary: false,
        };
        let checks = health_checks(&model, &node, &select);
        let hc = checks.values().next().expect("one health check");
        assert_eq!(
            hc.local_endpoints, 1,
            "the IPv6 slice: the first cluster IP's family"
        );
        assert_eq!(
            hc.listen,
            Listen::Addresses(vec!["192.168.7.1".parse().expect("ip")]),
            "the node addresses nodePortAddresses selects"
        );
        let unnamed = NodeInfo {
            name: String::new(),
            ..node
        };
        let checks = health_checks(&model, &unnamed, &NodePortAddresses::All);
        assert_eq!(
            checks.values().next().map(|hc| hc.local_endpoints),
            Some(0),
            "without a node name nothing is local"
        );
    }
}

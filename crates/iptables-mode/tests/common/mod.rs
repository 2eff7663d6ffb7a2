//! Shared by the test binaries (each uses a part): the clusters of `testdata/` with the
//! configurations their expected files were made with, and a synthetic cluster for the
//! incremental tests and the benchmark: `services` Services of namespace `bench`, every
//! tenth a NodePort, each with one EndpointSlice of `endpoints` ready endpoints spread over
//! three nodes, seen from node `node-0`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use desired::{Config, LocalDetector, NodeInfo, NodePortAddresses};
use iptables_mode::{Generator, Options};
use model::source::dir;
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use serde_json::json;

/// A case of `testdata/`: its directory, a variant name (the infix of its expected files)
/// and the configuration.
pub(crate) struct Case {
    pub(crate) dir: &'static str,
    pub(crate) variant: &'static str,
    pub(crate) config: Config,
    pub(crate) options: Options,
}

fn cidrs(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|c| c.parse().expect("cidr")).collect()
}

/// kube-proxy's `TestOverallIPTablesRules` (pkg/proxy/iptables/proxier_test.go) with its
/// fake proxier's configuration; the expected output is that test's (see the case's
/// README for the three deliberate differences).
pub(crate) fn kube_proxy_overall() -> Case {
    Case {
        dir: "kube-proxy-overall",
        variant: "",
        config: Config {
            local_detector: LocalDetector::ClusterCidr(cidrs(&["10.0.0.0/8"])),
            random_fully: false,
            ..Config::default()
        },
        options: Options::default(),
    }
}

/// The small cluster of `testdata/cluster` (its README lists what each Service exercises)
/// with the ClusterCIDR detector and kube-proxy's defaults.
pub(crate) fn cluster_defaults() -> Case {
    Case {
        dir: "cluster",
        variant: "",
        config: Config {
            local_detector: LocalDetector::ClusterCidr(cidrs(&["10.244.0.0/16", "fd00:244::/48"])),
            ..Config::default()
        },
        options: Options::default(),
    }
}

/// The same cluster with `masqueradeAll`, no local detector, selected NodePort addresses,
/// another masquerade bit, no localhost NodePorts and a liberal conntrack.
pub(crate) fn cluster_masquerade_all() -> Case {
    Case {
        dir: "cluster",
        variant: "masquerade-all.",
        config: Config {
            masquerade_all: true,
            local_detector: LocalDetector::None,
            node_port_addresses: NodePortAddresses::Select {
                cidrs: cidrs(&["172.18.0.0/16", "fd00:18::/64"]),
                primary: false,
            },
            masquerade_bit: 15,
            random_fully: true,
            ..Config::default()
        },
        options: Options {
            localhost_node_ports: false,
            conntrack_tcp_be_liberal: true,
        },
    }
}

/// Every case.
pub(crate) fn cases() -> [Case; 3] {
    [
        kube_proxy_overall(),
        cluster_defaults(),
        cluster_masquerade_all(),
    ]
}

impl Case {
    /// The case's directory.
    pub(crate) fn path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(self.dir)
    }

    /// A synced model of the case's objects.
    pub(crate) fn model(&self) -> Model {
        let snapshot = dir::read(&self.path()).expect("objects parse");
        assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
        let mut model = Model::new(ProxyFilter::default(), None);
        for event in snapshot.into_events() {
            let warnings = model.apply(event);
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        assert!(model.is_synced());
        model
    }

    /// The generator for the case, seen from the case's Node.
    pub(crate) fn generator(&self) -> Generator {
        let model = self.model();
        let node = model.node().expect("the case has its node");
        let node = NodeInfo::from_node(&node.name, Some(node), &[]);
        Generator::new(self.config.clone(), self.options, node, &model)
    }
}

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

//! Synthetic clusters for benchmarks: N Services, each with one
//! EndpointSlice of E endpoints, and the Node, as Kubernetes API objects
//! (for code that feeds a `Model` directly) or written out as a directory
//! that `kube-ipvs-proxy --from-dir` reads (one file per object, so that a
//! benchmark can change one EndpointSlice by rewriting one file).
//!
//! Service `i` has ClusterIP `10.96.{i/250}.{i%250+1}` port 80 (TCP,
//! target port 8080); its endpoints have addresses from `10.128.0.0/9`,
//! distinct across the cluster for a given `generation`, each naming its Pod (`targetRef`)
//! as a real EndpointSlice does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::apiserver::FakeApiServer;

/// The namespace every generated object is in.
pub const NAMESPACE: &str = "bench";

/// The shape of a synthetic cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    /// Number of Services (at most 62,500: ClusterIPs come from 10.96.0.0/16).
    pub services: u32,
    /// Endpoints in each Service's one EndpointSlice.
    pub endpoints_per_service: u32,
    /// Every `n`-th Service (from Service 0) is a NodePort; `None`: all ClusterIP.
    pub node_port_every: Option<u32>,
}

impl Synthetic {
    /// The Node object's name: the one `daemon::Daemon` runs as.
    pub const NODE: &'static str = "node-1";
    /// The Node's InternalIP.
    pub const NODE_IP: &'static str = "172.18.0.2";

    /// The benchmarks' cluster from their command line: `[SERVICES] [ENDPOINTS]`, 10,000
    /// Services x 10 endpoints by default, every Service a ClusterIP.
    ///
    /// # Panics
    /// On an argument that is not a number.
    pub fn from_args() -> Self {
        let mut args = std::env::args()
            .skip(1)
            .map(|a| a.parse::<u32>().expect("a number"));
        Synthetic {
            services: args.next().unwrap_or(10_000),
            endpoints_per_service: args.next().unwrap_or(10),
            node_port_every: None,
        }
    }

    /// Service `i`.
    pub fn service(&self, i: u32) -> core::Service {
        let node_port = self
            .node_port_every
            .filter(|n| i.is_multiple_of(*n))
            .map(|_| 30000 + (i % 2700) as i32);
        core::Service {
            metadata: meta(service_name(i), None),
            spec: Some(core::ServiceSpec {
                type_: Some(
                    if node_port.is_some() {
                        "NodePort"
                    } else {
                        "ClusterIP"
                    }
                    .into(),
                ),
                cluster_ip: Some(cluster_ip(i)),
                ports: Some(vec![core::ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    node_port,
                    protocol: Some("TCP".into()),
                    ..core::ServicePort::default()
                }]),
                ..core::ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// The EndpointSlice of Service `i`. Another `generation` moves every
    /// endpoint of the slice to other addresses.
    pub fn slice(&self, i: u32, generation: u32) -> discovery::EndpointSlice {
        let per_service = self.endpoints_per_service;
        let labels = BTreeMap::from([("kubernetes.io/service-name".to_owned(), service_name(i))]);
        let endpoints = (0..per_service)
            .map(|e| {
                let n = i * per_service + e + generation;
                discovery::Endpoint {
                    addresses: vec![format!(
                        "10.{}.{}.{}",
                        128 + n / 65536 % 128,
                        n / 256 % 256,
                        n % 256
                    )],
                    node_name: Some(format!("node-{}", n % 50)),
                    // As a Deployment's Pods are named: ReplicaSet hash, then a suffix.
                    target_ref: Some(core::ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(format!("{}-5d8f7b9c4-{n:05x}", service_name(i))),
                        namespace: Some(NAMESPACE.into()),
                        ..core::ObjectReference::default()
                    }),
                    ..discovery::Endpoint::default()
                }
            })
            .collect();
        discovery::EndpointSlice {
            metadata: meta(format!("{}-abcde", service_name(i)), Some(labels)),
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(vec![discovery::EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..discovery::EndpointPort::default()
            }]),
        }
    }

    /// The Node [`Synthetic::NODE`] with its InternalIP.
    pub fn node(&self) -> core::Node {
        core::Node {
            metadata: ObjectMeta {
                name: Some(Self::NODE.into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(core::NodeStatus {
                addresses: Some(vec![core::NodeAddress {
                    type_: "InternalIP".into(),
                    address: Self::NODE_IP.into(),
                }]),
                ..core::NodeStatus::default()
            }),
        }
    }

    /// Writes the cluster into `dir` as JSON files: `node.json`,
    /// `services/NNNNN.json` and `slices/NNNNN.json` (generation 0).
    ///
    /// # Panics
    /// When a file cannot be written.
    pub fn write_dir(&self, dir: &Path) {
        for sub in ["services", "slices"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.join(sub).display()));
        }
        write_json(&dir.join("node.json"), &self.node());
        for i in 0..self.services {
            write_json(&dir.join(format!("services/{i:05}.json")), &self.service(i));
            self.write_slice(dir, i, 0);
        }
    }

    /// Writes the cluster to `path` as one JSON List shaped as `kubectl get
    /// svc,endpointslices -A -o json` prints one (`apiVersion`, `items`: the Services, then
    /// the EndpointSlices, `kind: List`, `metadata`), with the Node as its last item,
    /// indented by `indent` per level (kubectl's: four spaces; empty: on one line), and
    /// returns the file's size in bytes.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_list(&self, path: &Path, indent: &str) -> u64 {
        let items: Vec<serde_json::Value> = (0..self.services)
            .map(|i| typed_json(&self.service(i)))
            .chain((0..self.services).map(|i| typed_json(&self.slice(i, 0))))
            .chain(std::iter::once(typed_json(&self.node())))
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}});
        let text = if indent.is_empty() {
            serde_json::to_vec(&list).expect("serialize the List")
        } else {
            let mut text = Vec::new();
            let pretty = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
            serde::Serialize::serialize(
                &list,
                &mut serde_json::Serializer::with_formatter(&mut text, pretty),
            )
            .expect("serialize the List");
            text
        };
        std::fs::write(path, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        text.len() as u64
    }

    /// Stores the cluster in the fake API server (generation 0 of the slices).
    pub fn serve(&self, api: &FakeApiServer) {
        let mut objects = vec![json(&self.node())];
        for i in 0..self.services {
            objects.push(json(&self.service(i)));
            objects.push(json(&self.slice(i, 0)));
        }
        api.apply_all(objects);
    }

    /// Replaces the EndpointSlice of Service `i` in the fake API server by its
    /// `generation`.
    pub fn serve_slice(&self, api: &FakeApiServer, i: u32, generation: u32) {
        api.apply(json(&self.slice(i, generation)));
    }

    /// Replaces the EndpointSlice of Service `i` in a directory written by
    /// [`Synthetic::write_dir`] by its `generation` (written aside, then
    /// renamed, so a reader never sees half a file).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_slice(&self, dir: &Path, i: u32, generation: u32) {
        let path = slice_path(dir, i);
        let tmp = path.with_extension("tmp");
        write_json(&tmp, &self.slice(i, generation));
        std::fs::rename(&tmp, &path)
            .unwrap_or_else(|e| panic!("cannot rename {}: {e}", tmp.display()));
    }
}

/// An object as the JSON the API server stores (k8s-openapi writes `apiVersion` and `kind`).
fn json<T: serde::Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).expect("serialize a Kubernetes object")
}

fn service_name(i: u32) -> String {
    format!("svc-{i}")
}

fn cluster_ip(i: u32) -> String {
    format!("10.96.{}.{}", i / 250, i % 250 + 1)
}

fn slice_path(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("slices/{i:05}.json"))
}

fn meta(name: String, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(NAMESPACE.into()),
        labels,
        ..ObjectMeta::default()
    }
}

/// `object` with its `apiVersion` and `kind`, which a directory reader needs.
fn typed_json<T: serde::Serialize + k8s_openapi::Resource>(object: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(object).expect("serialize a Kubernetes object");
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), T::API_VERSION.into());
        map.insert("kind".into(), T::KIND.into());
    }
    value
}

fn write_json<T: serde::Serialize + k8s_openapi::Resource>(path: &Path, object: &T) {
    let text = serde_json::to_string(&typed_json(object)).expect("serialize a Kubernetes object");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Synthetic = Synthetic {
        services: 3,
        endpoints_per_service: 4,
        node_port_every: Some(2),
    };

    #[test]
    fn endpoint_addresses_are_distinct_and_move_with_the_generation() {
        let all: std::collections::BTreeSet<String> = (0..SMALL.services)
            .flat_map(|i| SMALL.slice(i, 0).endpoints)
            .flat_map(|e| e.addresses)
            .collect();
        assert_eq!(all.len(), 12);
        let moved = SMALL.slice(1, 7).endpoints[0].addresses[0].clone();
        assert_ne!(moved, SMALL.slice(1, 0).endpoints[0].addresses[0]);
    }

    #[test]
    fn every_nth_service_is_a_node_port() {
        let types: Vec<Option<String>> = (0..SMALL.services)
            .map(|i| SMALL.service(i).spec.and_then(|s| s.type_))
            .collect();
        assert_eq!(
            types,
            ["NodePort", "ClusterIP", "NodePort"].map(|t| Some(t.to_owned()))
        );
    }

    #[test]
    fn the_directory_has_typed_json_files() {
        let dir = std::env::temp_dir().join(format!("kipx-synthetic-{}", std::process::id()));
        SMALL.write_dir(&dir);
        SMALL.write_slice(&dir, 2, 1);
        let slice: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("slices/00002.json")).expect("read"),
        )
        .expect("json");
        let node = std::fs::read_to_string(dir.join("node.json")).expect("read");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(slice["kind"], "EndpointSlice");
        assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "10.128.0.9");
        assert!(node.contains("\"kind\":\"Node\""), "{node}");
    }
}

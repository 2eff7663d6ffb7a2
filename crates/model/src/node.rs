//! This node: its name, topology zone and addresses.

use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use serde::Serialize;

use crate::net::IpFamily;
use crate::service::parse_ip;
use crate::warning::Invalid;

/// The node label kube-proxy reads the topology zone from.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The node the proxy runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `metadata.name`; endpoints with this `nodeName` are local.
    pub name: String,
    /// The [`ZONE_LABEL`] label, for topology hints.
    pub zone: Option<String>,
    /// `status.addresses` of type InternalIP, then ExternalIP, in order.
    pub addresses: Vec<IpAddr>,
    /// False while the node is being deleted (`metadata.deletionTimestamp`) or
    /// drained by the cluster autoscaler (taint [`AUTOSCALER_DELETE_TAINT`]):
    /// kube-proxy then fails `/healthz` so load balancers stop sending traffic.
    pub eligible: bool,
}

/// This machine's node name as kube-proxy guesses it without `--hostname-override`:
/// `$NODE_NAME`, else the kernel's host name, trimmed and lower-cased.
///
/// # Errors
/// The host name cannot be read.
pub fn local_name() -> std::io::Result<String> {
    let name = match std::env::var("NODE_NAME") {
        Ok(name) => name,
        Err(_) => std::fs::read_to_string("/proc/sys/kernel/hostname")?,
    };
    Ok(name.trim().to_lowercase())
}

/// The taint the cluster autoscaler puts on a node it is about to delete.
pub const AUTOSCALER_DELETE_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

impl Node {
    /// The node's primary IP of a family: its first InternalIP/ExternalIP of that family
    /// (kube-proxy's `GetNodeHostIPs`).
    pub fn primary_ip(&self, family: IpFamily) -> Option<IpAddr> {
        self.addresses
            .iter()
            .copied()
            .find(|ip| IpFamily::of(ip) == family)
    }

    /// Validates a `v1 Node`.
    ///
    /// # Errors
    /// [`Invalid`] for a missing name or an address that is not an IP.
    pub fn from_kubernetes(node: &core::Node) -> Result<Node, Invalid> {
        let name = node
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Invalid::new("metadata.name", "missing"))?;
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned();
        let listed = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut addresses = Vec::new();
        for wanted in ["InternalIP", "ExternalIP"] {
            for (i, a) in listed.iter().enumerate().filter(|(_, a)| a.type_ == wanted) {
                addresses.push(parse_ip(
                    format!("status.addresses[{i}].address"),
                    &a.address,
                )?);
            }
        }
        let deleting = node.metadata.deletion_timestamp.is_some();
        let draining = node
            .spec
            .as_ref()
            .and_then(|spec| spec.taints.as_ref())
            .is_some_and(|taints| taints.iter().any(|t| t.key == AUTOSCALER_DELETE_TAINT));
        Ok(Node {
            name,
            zone,
            addresses,
            eligible: !deleting && !draining,
        })
    }
}

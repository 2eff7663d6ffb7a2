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
}

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
        Ok(Node {
            name,
            zone,
            addresses,
        })
    }
}

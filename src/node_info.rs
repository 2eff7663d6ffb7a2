//! This node as the desired state sees it, from the Node object and the flags.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::NodeInfo;
use model::{IpFamily, Model};

/// Builds the node info: the name from `--hostname-override` or the Node object, the primary
/// IPs from `--node-ip` or the Node's addresses.
///
/// Until the dataplane reads the node's interfaces, the node's addresses are taken to be its
/// primary IPs plus the Node object's InternalIP/ExternalIP addresses.
pub(crate) fn node_info(model: &Model, name: Option<&str>, node_ips: &[IpAddr]) -> NodeInfo {
    let node = model.node();
    let listed: Vec<IpAddr> = node.map(|n| n.addresses.clone()).unwrap_or_default();
    let source = if node_ips.is_empty() {
        &listed
    } else {
        node_ips
    };
    let primary_ips: Vec<IpAddr> = IpFamily::ALL
        .into_iter()
        .filter_map(|f| source.iter().copied().find(|ip| IpFamily::of(ip) == f))
        .collect();
    let addresses: BTreeSet<IpAddr> = primary_ips.iter().chain(&listed).copied().collect();
    NodeInfo {
        name: name
            .map(str::to_owned)
            .or_else(|| node.map(|n| n.name.clone()))
            .unwrap_or_default(),
        zone: node.and_then(|n| n.zone.clone()),
        primary_ips,
        addresses,
    }
}

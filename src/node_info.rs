//! This node as the desired state sees it, from the Node object and the flags.

use std::net::IpAddr;

use desired::NodeInfo;
use model::Model;

/// Builds the node info: the name from `--hostname-override` or the Node object, the primary
/// IPs from `--node-ip` or the Node's addresses.
///
/// Until the dataplane reads the node's interfaces, the node's addresses are taken to be its
/// primary IPs plus the Node object's InternalIP/ExternalIP addresses.
pub(crate) fn node_info(model: &Model, name: Option<&str>, node_ips: &[IpAddr]) -> NodeInfo {
    let node = model.node();
    let name = name
        .or_else(|| node.map(|n| n.name.as_str()))
        .unwrap_or_default();
    NodeInfo::from_node(name, node, node_ips)
}

//! This node as the desired state sees it, from the Node object, the flags and
//! the node's interfaces.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::NodeInfo;
use model::Model;

/// Builds the node info: the name from `--hostname-override` or the Node object, the primary
/// IPs from `--node-ip` or the Node's addresses.
///
/// The node's addresses (where NodePorts listen) are `interfaces`, the addresses read from
/// the node's interfaces except `kube-ipvs0`, as kube-proxy's IPVS mode reads them. Until
/// they have been read (a dry run never reads them), they are taken to be the primary IPs
/// plus the Node object's InternalIP/ExternalIP addresses.
pub(crate) fn node_info(
    model: &Model,
    name: Option<&str>,
    node_ips: &[IpAddr],
    interfaces: Option<&BTreeSet<IpAddr>>,
) -> NodeInfo {
    let node = model.node();
    let name = name
        .or_else(|| node.map(|n| n.name.as_str()))
        .unwrap_or_default();
    let mut info = NodeInfo::from_node(name, node, node_ips);
    if let Some(addresses) = interfaces {
        info.addresses = addresses.clone();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ProxyFilter;

    #[test]
    fn interface_addresses_replace_the_node_objects_once_read() {
        let model = Model::new(ProxyFilter::default(), None);
        let primary: IpAddr = "192.168.7.1".parse().unwrap();
        let guessed = node_info(&model, Some("n1"), &[primary], None);
        assert_eq!(guessed.addresses, BTreeSet::from([primary]));
        let read: BTreeSet<IpAddr> = ["192.168.7.1", "10.244.1.1", "fd00::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let info = node_info(&model, Some("n1"), &[primary], Some(&read));
        assert_eq!(info.addresses, read);
        assert_eq!(info.primary_ips, vec![primary]);
    }
}

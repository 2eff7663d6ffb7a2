//! The node's own addresses: every address on every interface except the
//! dummy link that holds the virtual ones, as kube-proxy's IPVS mode reads
//! them for NodePorts. IPv6 link-local addresses are left out (a NodePort
//! there would need a zone to be reachable).

use std::collections::BTreeSet;
use std::net::IpAddr;

use netlink::Transport;

use crate::dummy::{LinkError, addresses_where, failed};
use crate::rtnl::Rtnl;

/// Whether an address listed on an interface can carry NodePorts.
pub fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Every usable address on links other than the one with index `except`.
///
/// # Errors
/// [`LinkError::Netlink`] when listing fails.
pub fn node_addresses<T: Transport>(
    rtnl: &mut Rtnl<T>,
    except: u32,
) -> Result<BTreeSet<IpAddr>, LinkError> {
    let listed = addresses_where(rtnl, |index| index != except)
        .map_err(failed("list addresses", "every link".to_owned()))?;
    Ok(listed
        .into_iter()
        .map(|(ip, _)| ip)
        .filter(usable)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_ipv6_is_not_a_node_address() {
        for (ip, ok) in [
            ("192.168.7.1", true),
            ("127.0.0.1", true),
            ("fd00::1", true),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", true),
        ] {
            assert_eq!(usable(&ip.parse().unwrap()), ok, "{ip}");
        }
    }
}

//! The addresses on `kube-ipvs0`: bind what is wanted, unbind what is not,
//! except addresses that virtual servers still draining use (unbinding them
//! would black-hole the connections that draining protects).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipvs::ServiceKey;

/// Addresses to add and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPlan {
    /// To bind (after the virtual servers exist).
    pub add: BTreeSet<IpAddr>,
    /// To unbind (after the virtual servers are gone).
    pub remove: BTreeSet<IpAddr>,
}

/// Compares the addresses on `kube-ipvs0` with the wanted ones.
pub fn plan<'a>(
    wanted: impl IntoIterator<Item = IpAddr>,
    bound: &BTreeSet<IpAddr>,
    draining: impl IntoIterator<Item = &'a ServiceKey>,
) -> AddressPlan {
    let wanted: BTreeSet<IpAddr> = wanted.into_iter().collect();
    let in_use: BTreeSet<IpAddr> = draining
        .into_iter()
        .filter_map(|k| match k {
            ServiceKey::Inet { addr, .. } => Some(*addr),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    AddressPlan {
        add: wanted.difference(bound).copied().collect(),
        remove: bound
            .iter()
            .filter(|a| !wanted.contains(a) && !in_use.contains(a))
            .copied()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::Protocol;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn binds_missing_and_unbinds_unused_addresses() {
        let draining = [ServiceKey::inet(
            Protocol::Tcp,
            "10.96.0.12".parse().unwrap(),
            80,
        )];
        let p = plan(
            ips(&["10.96.0.10", "fd00::1"]),
            &ips(&["10.96.0.10", "10.96.0.11", "10.96.0.12"]),
            &draining,
        );
        assert_eq!(p.add, ips(&["fd00::1"]));
        assert_eq!(
            p.remove,
            ips(&["10.96.0.11"]),
            "10.96.0.12 stays while its virtual server drains"
        );
    }
}

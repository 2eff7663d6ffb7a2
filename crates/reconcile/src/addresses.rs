//! The addresses `kube-ipvs0` should hold: the wanted ones, plus those that
//! virtual servers still draining use (unbinding them would black-hole the
//! connections that draining protects). `hostnet` turns the target into
//! additions and removals.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipvs::ServiceKey;

/// The addresses to hold: every wanted one, and every bound one that a
/// draining virtual server still uses.
pub fn target<'a>(
    wanted: impl IntoIterator<Item = IpAddr>,
    bound: &BTreeSet<IpAddr>,
    draining: impl IntoIterator<Item = &'a ServiceKey>,
) -> BTreeSet<IpAddr> {
    let in_use = draining.into_iter().filter_map(|k| match k {
        ServiceKey::Inet { addr, .. } if bound.contains(addr) => Some(*addr),
        _ => None,
    });
    wanted.into_iter().chain(in_use).collect()
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
        let bound = ips(&["10.96.0.10", "10.96.0.11", "10.96.0.12"]);
        let target = target(ips(&["10.96.0.10", "fd00::1"]), &bound, &draining);
        assert!(
            target.contains(&"fd00::1".parse().unwrap()),
            "the missing address is added"
        );
        assert!(
            !target.contains(&"10.96.0.11".parse().unwrap()),
            "the unused address goes"
        );
        assert_eq!(
            target,
            ips(&["10.96.0.10", "10.96.0.12", "fd00::1"]),
            "10.96.0.12 stays while its virtual server drains"
        );
    }
}

//! kube-proxy's ipsets as `ipset` crate values: the specs and members the
//! desired state wants, and which listed sets are ours to destroy.
//!
//! The conversion goes through types, not text: a [`desired::SetEntry`]
//! becomes an [`ipset::Entry`] field by field. Every set of kube-proxy's
//! list is wanted in every family the node proxies, empty or not, as
//! kube-proxy creates them all; sets carry no `comment` extension.

use std::collections::BTreeSet;

use desired::ipset::SetType as DesiredType;
use desired::{DesiredState, SetEntry, SetKind};
use ipset::{Entry, Family, HashLimits, ListedSet, Member, Net, SetName, SetSpec, SetType};
use model::{IpFamily, Protocol};

/// One set to keep: its spec and all its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSet {
    /// Which of kube-proxy's sets it is.
    pub kind: SetKind,
    /// The spec to create it with.
    pub spec: SetSpec,
    /// Its members, sorted.
    pub members: Vec<Member>,
}

/// The `ipset` crate's name for one of kube-proxy's sets in a family.
pub fn set_name(kind: SetKind, family: IpFamily) -> SetName {
    match kind.name(family).parse() {
        Ok(name) => name,
        // The desired crate cuts names to ipset's 31 printable characters.
        Err(e) => unreachable!("kube-proxy set name rejected: {e}"),
    }
}

/// The spec kube-proxy creates a set with (`hashsize 1024 maxelem 65536`,
/// or `range 0-65535`; no comments).
pub fn spec(kind: SetKind, family: IpFamily) -> SetSpec {
    let name = set_name(kind, family);
    let family = match family {
        IpFamily::V4 => Family::Inet,
        IpFamily::V6 => Family::Inet6,
    };
    let hash = |set_type| match SetSpec::hash(name.clone(), set_type, family, HashLimits::default())
    {
        Ok(spec) => spec,
        Err(e) => unreachable!("{e}"),
    };
    match kind.set_type() {
        DesiredType::HashIp => hash(SetType::HashIp),
        DesiredType::HashIpPort => hash(SetType::HashIpPort),
        DesiredType::HashIpPortIp => hash(SetType::HashIpPortIp),
        DesiredType::HashIpPortNet => hash(SetType::HashIpPortNet),
        DesiredType::BitmapPort => SetSpec::bitmap_port(name, 0..=65535),
    }
}

fn protocol(p: Protocol) -> ipset::Protocol {
    match p {
        Protocol::Tcp => ipset::Protocol::Tcp,
        Protocol::Udp => ipset::Protocol::Udp,
        Protocol::Sctp => ipset::Protocol::Sctp,
    }
}

/// One desired member as an `ipset` entry.
pub fn entry(e: &SetEntry) -> Entry {
    match *e {
        SetEntry::Ip(ip) => Entry::Ip { ip },
        SetEntry::IpPort(ip, p, port) => Entry::IpPort {
            ip,
            proto: protocol(p),
            port,
        },
        SetEntry::IpPortIp(ip, p, port, ip2) => Entry::IpPortIp {
            ip,
            proto: protocol(p),
            port,
            ip2,
        },
        SetEntry::IpPortNet(ip, p, port, net) => Entry::IpPortNet {
            ip,
            proto: protocol(p),
            port,
            net: match Net::new(net.addr(), net.prefix_len()) {
                Ok(net) => net,
                // An `IpNet`'s prefix always fits its address.
                Err(e) => unreachable!("{e}"),
            },
        },
        SetEntry::Port(port) => Entry::Port { port },
    }
}

/// Every set the state wants, in kube-proxy's creation order, family by
/// family.
pub fn wanted(state: &DesiredState) -> Vec<WantedSet> {
    let mut sets = Vec::new();
    for family in state.node().families() {
        for kind in SetKind::ALL {
            sets.push(WantedSet {
                kind: *kind,
                spec: spec(*kind, family),
                members: state
                    .set_entries(family, *kind)
                    .map(|e| Member::new(entry(e)))
                    .collect(),
            });
        }
    }
    sets
}

/// Every name kube-proxy's IPVS mode gives a set, in both families.
pub fn owned_names() -> BTreeSet<SetName> {
    IpFamily::ALL
        .into_iter()
        .flat_map(|f| SetKind::ALL.iter().map(move |k| set_name(*k, f)))
        .collect()
}

/// The listed sets that are ours (kube-proxy's names) but not wanted, in
/// listing order: to destroy once no rule references them.
pub fn unwanted<'a>(listed: &'a [ListedSet], wanted: &[WantedSet]) -> Vec<&'a SetName> {
    let ours = owned_names();
    let keep: BTreeSet<&SetName> = wanted.iter().map(|w| w.spec.name()).collect();
    listed
        .iter()
        .map(|s| &s.name)
        .filter(|n| ours.contains(*n) && !keep.contains(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipset::Contents;

    #[test]
    fn specs_match_kube_proxy_create_lines() {
        assert_eq!(
            spec(SetKind::ClusterIp, IpFamily::V4).to_string(),
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536"
        );
        assert_eq!(
            spec(SetKind::LoadBalancerSourceCidr, IpFamily::V6).to_string(),
            "create KUBE-6-LOAD-BALANCER-SOURCE-CID hash:ip,port,net family inet6 hashsize 1024 maxelem 65536"
        );
        assert_eq!(
            spec(SetKind::NodePortTcp, IpFamily::V4).to_string(),
            "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535"
        );
        // The same text as the dry run's `ipset save` header, for every set.
        for family in IpFamily::ALL {
            for kind in SetKind::ALL {
                let ty = kind.set_type();
                let dry = format!(
                    "create {} {} {}",
                    kind.name(family),
                    ty.as_str(),
                    ty.create_options(family)
                );
                assert_eq!(spec(*kind, family).to_string(), dry);
            }
        }
    }

    #[test]
    fn entries_convert_field_by_field_and_print_alike() {
        let tcp = Protocol::Tcp;
        let cases = [
            SetEntry::Ip("10.96.0.1".parse().unwrap()),
            SetEntry::IpPort("10.96.0.10".parse().unwrap(), Protocol::Udp, 53),
            SetEntry::IpPortIp(
                "10.244.1.5".parse().unwrap(),
                tcp,
                8080,
                "10.244.1.5".parse().unwrap(),
            ),
            SetEntry::IpPortNet(
                "192.0.2.10".parse().unwrap(),
                Protocol::Sctp,
                80,
                "198.51.100.0/24".parse().unwrap(),
            ),
            SetEntry::IpPortNet(
                "fd00::10".parse().unwrap(),
                tcp,
                80,
                "2001:db8::/32".parse().unwrap(),
            ),
            SetEntry::Port(30080),
        ];
        for e in &cases {
            assert_eq!(entry(e).to_string(), e.to_string());
        }
        assert_eq!(
            entry(&cases[1]),
            Entry::IpPort {
                ip: "10.96.0.10".parse().unwrap(),
                proto: ipset::Protocol::Udp,
                port: 53
            }
        );
        // ipset prints a host network without /32; the entry is still a net.
        let host = SetEntry::IpPortNet(
            "192.0.2.10".parse().unwrap(),
            tcp,
            80,
            "198.51.100.7/32".parse().unwrap(),
        );
        assert_eq!(entry(&host).to_string(), "192.0.2.10,tcp:80,198.51.100.7");
        assert_eq!(entry(&host).set_type(), SetType::HashIpPortNet);
    }

    #[test]
    fn every_set_is_wanted_and_only_ours_are_destroyed() {
        let state = DesiredState::default();
        let sets = wanted(&state);
        assert_eq!(sets.len(), 17, "IPv4 only for a node without primary IPs");
        assert!(sets.iter().all(|s| s.members.is_empty()));
        let listed = |name: &str| ListedSet {
            name: name.parse().unwrap(),
            references: 0,
            contents: Contents::Foreign {
                type_name: "hash:mac".into(),
                reason: "test".into(),
            },
        };
        let kernel = [
            listed("KUBE-CLUSTER-IP"),
            listed("KUBE-6-CLUSTER-IP"),
            listed("KUBE-SVC-SOMETHING"),
            listed("my-own-set"),
        ];
        let gone: Vec<&str> = unwanted(&kernel, &sets)
            .into_iter()
            .map(SetName::as_str)
            .collect();
        assert_eq!(gone, vec!["KUBE-6-CLUSTER-IP"]);
        assert_eq!(owned_names().len(), 34);
    }
}

//! Drift: kernel state that differs from what the last successful sync
//! programmed, i.e. changed by hand or by another program. The next sync
//! repairs it like any other difference; this only counts it, by kind, for
//! the `kube_ipvs_proxy_drift_repaired_total` metric and the logs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipvs::ServiceWithDestinations;

use ipset::{Contents, ListedSet, SetName};

use crate::ipsets::WantedSet;
use crate::ipvs::same_service;
use crate::ownership::Ownership;
use crate::wanted::Wanted;

/// Drift found, by kind (`virtual_server`, `real_server`, `address`, `ipset`,
/// `ipset_entry`, `iptables_chain`, `iptables_jump`).
pub type DriftCounts = BTreeMap<&'static str, u64>;

/// Virtual and real servers that differ from `last`, the table the previous
/// sync programmed. Real servers at weight 0 that `last` does not have are
/// ours, draining, and not drift.
pub fn ipvs(last: &Wanted, observed: &[ServiceWithDestinations], owner: &Ownership) -> DriftCounts {
    let mut counts = DriftCounts::new();
    let mut bump = |kind| *counts.entry(kind).or_insert(0) += 1;
    let observed: BTreeMap<_, _> = observed
        .iter()
        .map(|s| (s.service.service.key, s))
        .collect();
    for (key, want) in last {
        let Some(have) = observed.get(key) else {
            bump("virtual_server");
            continue;
        };
        if !same_service(&want.service, &have.service.service) {
            bump("virtual_server");
        }
        let present: BTreeMap<_, _> = have
            .destinations
            .iter()
            .map(|e| ((e.destination.addr, e.destination.port), e.destination))
            .collect();
        for dest in &want.destinations {
            if present.get(&(dest.addr, dest.port)) != Some(dest) {
                bump("real_server");
            }
        }
        for (addr_port, dest) in &present {
            if dest.weight != 0 && !want.destinations.contains(addr_port.0, addr_port.1) {
                bump("real_server");
            }
        }
    }
    for (key, have) in &observed {
        let serving = have.destinations.iter().any(|e| e.destination.weight != 0);
        if !last.contains_key(key) && owner.owns(key) && serving {
            bump("virtual_server");
        }
    }
    counts
}

/// Addresses on `kube-ipvs0` that differ from the ones the last sync left.
pub fn addresses(last: &BTreeSet<IpAddr>, bound: &BTreeSet<IpAddr>) -> DriftCounts {
    let n = last.symmetric_difference(bound).count() as u64;
    if n == 0 {
        DriftCounts::new()
    } else {
        [("address", n)].into()
    }
}

/// Sets and members that differ from `last`, the sets the previous sync
/// left: a set gone counts as `ipset`, each member missing or extra as
/// `ipset_entry` (a flushed set counts all its members).
pub fn ipsets(last: &[WantedSet], listed: &[ListedSet]) -> DriftCounts {
    let mut counts = DriftCounts::new();
    let listed: BTreeMap<&SetName, &ListedSet> = listed.iter().map(|s| (&s.name, s)).collect();
    for set in last {
        let Some(Contents::Known { members, .. }) =
            listed.get(set.spec.name()).map(|l| &l.contents)
        else {
            // Gone, or replaced by a set of another kind.
            *counts.entry("ipset").or_insert(0) += 1;
            continue;
        };
        let (add, del) = ipset::diff(members, &set.members);
        let n = (add.len() + del.len()) as u64;
        if n > 0 {
            *counts.entry("ipset_entry").or_insert(0) += n;
        }
    }
    counts
}

/// What a full iptables sync repaired: when the desired table is the one
/// the previous sync applied, every chain it had to rewrite or delete
/// (`iptables_chain`) and every jump it had to insert or delete
/// (`iptables_jump`) was changed behind our back.
pub fn chains(plan: &iptables::Plan) -> DriftCounts {
    let chains = (plan.rewritten.len() + plan.deleted.len()) as u64;
    let jumps = (plan.jumps_inserted.len() + plan.rules_deleted.len()) as u64;
    [("iptables_chain", chains), ("iptables_jump", jumps)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wanted::WantedService;
    use ipvs::{
        Destination, DestinationEntry, ForwardMethod, Protocol, Scheduler, Service, ServiceEntry,
        ServiceKey, Stats,
    };

    fn owner() -> Ownership {
        Ownership {
            exclude: vec![],
            dummy_addresses: ["10.96.0.10".parse().unwrap(), "10.96.0.11".parse().unwrap()].into(),
            node_port_addresses: BTreeSet::new(),
            node_port_range: Ownership::DEFAULT_NODE_PORT_RANGE,
        }
    }

    fn service(vip: &str) -> Service {
        Service::new(
            ServiceKey::inet(Protocol::Tcp, vip.parse().unwrap(), 80),
            Scheduler::from("rr".to_owned()),
        )
    }

    fn dest(host: &str, weight: u32) -> Destination {
        Destination::new(
            host.parse().unwrap(),
            8080,
            ForwardMethod::Masquerade,
            weight,
        )
    }

    fn have(s: Service, dests: &[Destination]) -> ServiceWithDestinations {
        ServiceWithDestinations {
            service: ServiceEntry {
                service: s,
                stats: Stats::default(),
            },
            destinations: dests
                .iter()
                .map(|d| DestinationEntry {
                    destination: *d,
                    active_connections: 0,
                    inactive_connections: 0,
                    persistent_connections: 0,
                    stats: Stats::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn counts_what_changed_behind_our_back() {
        let kept = service("10.96.0.10");
        let deleted_by_hand = service("10.96.0.11");
        let last: Wanted = [kept.clone(), deleted_by_hand]
            .into_iter()
            .map(|s| {
                let destinations = [dest("10.244.1.5", 1)].into_iter().collect();
                (
                    s.key,
                    WantedService {
                        service: s,
                        destinations,
                        origin: String::new(),
                        drain_timeout: None,
                    }
                    .into(),
                )
            })
            .collect();
        // One real server added by hand, ours still there, one draining (weight 0).
        let observed = [have(
            kept,
            &[
                dest("10.244.1.5", 1),
                dest("10.244.9.9", 1),
                dest("10.244.2.5", 0),
            ],
        )];
        let counts = ipvs(&last, &observed, &owner());
        assert_eq!(counts, [("real_server", 1), ("virtual_server", 1)].into());
        assert_eq!(
            ipvs(&last, &[], &owner()),
            [("virtual_server", 2)].into(),
            "both deleted by hand"
        );
    }

    #[test]
    fn counts_addresses_removed_or_added_by_hand() {
        let last: BTreeSet<IpAddr> =
            ["10.96.0.10".parse().unwrap(), "10.96.0.11".parse().unwrap()].into();
        let bound: BTreeSet<IpAddr> = ["10.96.0.10".parse().unwrap()].into();
        assert_eq!(addresses(&last, &bound), [("address", 1)].into());
        assert!(addresses(&last, &last).is_empty());
    }

    #[test]
    fn a_flushed_or_missing_set_is_drift() {
        use desired::SetKind;
        use model::IpFamily;
        let spec = crate::ipsets::spec(SetKind::ClusterIp, IpFamily::V4);
        let member = |e: &str| ipset::Member::new(e.parse().unwrap());
        let last = [
            WantedSet {
                kind: SetKind::ClusterIp,
                spec: spec.clone(),
                members: vec![member("10.96.0.10,tcp:80"), member("10.96.0.10,udp:53")],
            },
            WantedSet {
                kind: SetKind::IpvsIps,
                spec: crate::ipsets::spec(SetKind::IpvsIps, IpFamily::V4),
                members: vec![],
            },
        ];
        let flushed = ListedSet {
            name: spec.name().clone(),
            references: 1,
            contents: Contents::Known {
                spec: spec.clone(),
                members: vec![member("10.96.0.11,tcp:80")],
            },
        };
        let counts = ipsets(&last, &[flushed]);
        assert_eq!(counts, [("ipset", 1), ("ipset_entry", 3)].into());
    }

    #[test]
    fn chains_count_rewrites_and_jumps() {
        use iptables::{Learned, Ruleset, Table};
        let state = desired::DesiredState::default();
        let nat = &crate::iptables::tables(&state, model::IpFamily::V4).unwrap()[0];
        let saved = Ruleset::parse("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n").unwrap();
        let plan = iptables::plan(&saved.tables[&Table::Nat], nat, &Learned::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            chains(&plan),
            [("iptables_chain", 5), ("iptables_jump", 3)].into()
        );
    }
}

//! The scope of a periodic sync, from a cheap look at the whole table.
//!
//! A periodic sync must find drift anywhere, but reading every virtual
//! server exactly costs one netlink dump per virtual server (at 10,000
//! Services, most of a minute under emulation). Instead it looks at the
//! table twice cheaply: one dump of every virtual server's attributes
//! (`ipvs::Client::services`) and the overview of every real server
//! (`/proc/net/ip_vs`: address, port, forwarding method, weight and
//! connection counts). A virtual server is then in scope, and read exactly,
//! when
//! - we want it and its attributes or its real servers differ from what we
//!   want (one missing, one extra, another weight or forwarding method),
//! - it is ours and we do not want it (to drain and delete),
//! - one of its real servers is draining (its deletion waits on the
//!   kernel's connection counters), or
//! - we want it and the kernel does not have it (nothing to read: it is
//!   added).
//!
//! What the overview does not show, a real server's connection thresholds
//! and tunnel settings, is not checked: we never set them, so a change
//! there is drift this does not repair. Everything else about a virtual
//! server a periodic sync repairs as before.

use std::collections::{BTreeMap, BTreeSet};

use ipvs::{OverviewKey, OverviewService, Service, ServiceEntry, ServiceKey};

use crate::drain::Draining;
use crate::ipvs::same_service;
use crate::ownership::Ownership;
use crate::scope::Scope;
use crate::wanted::{Wanted, WantedService};

/// The look at the whole table, one overview entry at a time.
#[derive(Debug)]
pub struct Survey<'a> {
    wanted: &'a Wanted,
    owner: &'a Ownership,
    /// Every virtual server the kernel has, with its attributes.
    services: BTreeMap<ServiceKey, &'a Service>,
    /// Those the overview showed.
    seen: BTreeSet<ServiceKey>,
    /// Those to read exactly.
    differing: BTreeSet<ServiceKey>,
}

impl<'a> Survey<'a> {
    /// A survey of a table whose virtual servers are `services` (a dump),
    /// for what we `wanted`, touching what `owner` says is ours.
    pub fn new(wanted: &'a Wanted, owner: &'a Ownership, services: &'a [ServiceEntry]) -> Self {
        Survey {
            wanted,
            owner,
            services: services
                .iter()
                .map(|e| (e.service.key, &e.service))
                .collect(),
            seen: BTreeSet::new(),
            differing: BTreeSet::new(),
        }
    }

    /// Takes one virtual server of the overview into account.
    pub fn look(&mut self, overview: &OverviewService) {
        // Firewall-mark virtual servers are never ours (see `Ownership`).
        let OverviewKey::Service(key) = overview.key else {
            return;
        };
        self.seen.insert(key);
        let differs = match self.wanted.get(&key) {
            Some(want) => match self.services.get(&key) {
                Some(have) => {
                    !same_service(&want.service, have) || !same_real_servers(want, overview)
                }
                // Added since the dump: read it.
                None => true,
            },
            None => self.owner.owns(&key),
        };
        if differs {
            self.differing.insert(key);
        }
    }

    /// The scope: what differs, what drains, and what is wanted but
    /// missing; `last` is what the previous successful sync programmed
    /// (for counting drift), if there was one.
    pub fn scope(mut self, last: Option<&Wanted>, draining: &Draining) -> Scope {
        let present = |key: &ServiceKey| self.seen.contains(key) || self.services.contains_key(key);
        // In the dump but not in the overview (changed in between): read it.
        let unseen: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|key| !self.seen.contains(key))
            .filter(|key| self.wanted.contains_key(key) || self.owner.owns(key))
            .copied()
            .collect();
        self.differing.extend(unseen);
        self.differing
            .extend(draining.services().filter(|k| present(k)));
        let missing = self
            .wanted
            .keys()
            .chain(last.into_iter().flat_map(|l| l.keys()))
            .filter(|key| !present(key))
            .copied();
        let planned: BTreeSet<ServiceKey> = self.differing.iter().copied().chain(missing).collect();
        Scope::of(&planned, self.differing, self.wanted, last)
    }
}

/// Whether the overview shows exactly the real servers we want.
fn same_real_servers(want: &WantedService, overview: &OverviewService) -> bool {
    overview.destinations.len() == want.destinations.len()
        && overview.destinations.iter().all(|seen| {
            want.destinations
                .get(seen.addr, seen.port)
                .is_some_and(|dest| seen.shows(dest))
        })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::{Duration, Instant};

    use ipvs::{OverviewDestination, Protocol, ServiceWithDestinations};

    use super::*;
    use crate::fixtures::*;

    /// What `/proc/net/ip_vs` shows of a virtual server.
    fn overview(have: &ServiceWithDestinations) -> OverviewService {
        OverviewService {
            key: OverviewKey::Service(have.service.service.key),
            destinations: have
                .destinations
                .iter()
                .map(|e| OverviewDestination {
                    addr: e.destination.addr,
                    port: e.destination.port,
                    forward: e.destination.forward.name(),
                    weight: e.destination.weight,
                    active_connections: e.active_connections,
                    inactive_connections: e.inactive_connections,
                })
                .collect(),
        }
    }

    /// The scope a survey of `kernel` finds.
    fn survey(
        wanted: &Wanted,
        kernel: &[ServiceWithDestinations],
        last: Option<&Wanted>,
        draining: &Draining,
    ) -> Scope {
        let services: Vec<ServiceEntry> = kernel.iter().map(|s| s.service.clone()).collect();
        let owner = owner();
        let mut survey = Survey::new(wanted, &owner, &services);
        for s in kernel {
            survey.look(&overview(s));
        }
        survey.scope(last, draining)
    }

    fn no_draining() -> Draining {
        Draining::new(Duration::from_secs(60))
    }

    fn keys(scope: &Scope) -> (Vec<ServiceKey>, Vec<ServiceKey>) {
        (
            scope.keys.iter().copied().collect(),
            scope.wanted.keys().copied().collect(),
        )
    }

    #[test]
    fn a_table_as_wanted_is_out_of_scope() {
        let k = key(Protocol::Tcp, "10.96.0.10", 80);
        let wanted: Wanted = [want(k, "rr", &[dest("10.244.0.1", 80, 1)])].into();
        let kernel = [have(k, "rr", vec![entry(dest("10.244.0.1", 80, 1), 4, 2)])];
        let scope = survey(&wanted, &kernel, Some(&wanted), &no_draining());
        assert_eq!(scope, Scope::default());
    }

    #[test]
    fn any_difference_the_overview_or_the_dump_shows_is_read() {
        let [a, b, c, d] = [10, 11, 12, 13].map(|p| key(Protocol::Tcp, "10.96.0.10", p));
        let rs = |w| dest("10.244.0.1", 80, w);
        let wanted: Wanted = [
            want(a, "rr", &[rs(1)]),
            want(b, "rr", &[rs(1)]),
            want(c, "rr", &[rs(1), dest("10.244.0.2", 80, 1)]),
            want(d, "rr", &[rs(1)]),
        ]
        .into();
        let kernel = [
            have(a, "rr", vec![entry(rs(2), 0, 0)]),  // another weight
            have(b, "wrr", vec![entry(rs(1), 0, 0)]), // another scheduler
            have(c, "rr", vec![entry(rs(1), 0, 0)]),  // one missing
            have(
                d,
                "rr",
                vec![entry(rs(1), 0, 0), entry(dest("10.244.0.9", 80, 1), 0, 0)],
            ), // one extra
        ];
        let scope = survey(&wanted, &kernel, None, &no_draining());
        assert_eq!(keys(&scope), (vec![a, b, c, d], vec![a, b, c, d]));
        assert_eq!(scope.last, Wanted::new());
    }

    #[test]
    fn missing_virtual_servers_are_planned_without_a_read() {
        let k = key(Protocol::Tcp, "10.96.0.10", 80);
        let wanted: Wanted = [want(k, "rr", &[dest("10.244.0.1", 80, 1)])].into();
        let scope = survey(&wanted, &[], Some(&wanted), &no_draining());
        assert_eq!(keys(&scope), (vec![], vec![k]));
        // Deleted behind our back: counted as drift against `last`.
        assert_eq!(scope.last, wanted);
    }

    #[test]
    fn ours_unwanted_is_read_and_foreign_or_fwmark_is_not() {
        let ours = key(Protocol::Tcp, "10.96.0.11", 80);
        let foreign = key(Protocol::Tcp, "192.0.2.1", 80);
        let kernel = [
            have(ours, "rr", vec![]),
            have(foreign, "rr", vec![entry(dest("10.244.0.1", 80, 1), 0, 0)]),
        ];
        let services: Vec<ServiceEntry> = kernel.iter().map(|s| s.service.clone()).collect();
        let (wanted, owner) = (Wanted::new(), owner());
        let mut survey = Survey::new(&wanted, &owner, &services);
        for s in &kernel {
            survey.look(&overview(s));
        }
        survey.look(&OverviewService {
            key: OverviewKey::Fwmark(NonZeroU32::MIN),
            destinations: vec![],
        });
        let scope = survey.scope(None, &no_draining());
        assert_eq!(keys(&scope), (vec![ours], vec![]));
    }

    #[test]
    fn draining_and_unshown_virtual_servers_are_read() {
        let [a, b] = [80, 81].map(|p| key(Protocol::Tcp, "10.96.0.10", p));
        let rs = dest("10.244.0.1", 80, 1);
        let wanted: Wanted = [want(a, "rr", &[rs]), want(b, "rr", &[rs])].into();
        let kernel = [
            have(
                a,
                "rr",
                vec![entry(rs, 0, 0), entry(dest("10.244.0.2", 80, 0), 1, 0)],
            ),
            have(b, "rr", vec![entry(rs, 0, 0)]),
        ];
        let mut draining = no_draining();
        draining.start((a, ip("10.244.0.2"), 80), Instant::now());
        let services: Vec<ServiceEntry> = kernel.iter().map(|s| s.service.clone()).collect();
        let owner = owner();
        let mut survey = Survey::new(&wanted, &owner, &services);
        // `b` was in the dump, but the overview (read after) no longer showed it.
        survey.look(&overview(&kernel[0]));
        let scope = survey.scope(Some(&wanted), &draining);
        assert_eq!(keys(&scope), (vec![a, b], vec![a, b]));
    }
}

//! The scope of a periodic sync, from a cheap look at the whole table.
//!
//! A periodic sync must find drift anywhere, but reading every virtual
//! server exactly costs one netlink dump per virtual server (at 10,000
//! Services, 5 s under emulation). Instead it reads the overview,
//! `/proc/net/ip_vs` (0.7 s there): every virtual server's scheduler,
//! persistence and (IPv4) one-packet flag, and every real server's address,
//! port, forwarding method, weight and connection counts. A virtual server
//! is then in scope, and read exactly, when
//! - we want it and what the overview shows differs from what we want (a
//!   real server missing or extra, another weight, forwarding method,
//!   scheduler or persistence),
//! - we want it persistent and the kernel's tick rate is not known yet (the
//!   overview shows timeouts in ticks; the first exact read of a persistent
//!   virtual server tells the rate, [`tick_rate`]),
//! - we want it with something the overview cannot show (scheduler flags, a
//!   persistence engine, the one-packet flag on IPv6): read every time,
//! - it is ours and we do not want it (to drain and delete),
//! - one of its real servers is draining (its deletion waits on the
//!   kernel's connection counters), or
//! - we want it and the kernel does not have it (nothing to read: it is
//!   added).
//!
//! The overview can leave virtual servers out: on Linux 6.1 every network
//! namespace's are in one table, and while another namespace has some, each
//! `read` of the file restarts at a position counted over this namespace's
//! only, while stepping within a read counts every namespace's, so some of
//! ours are skipped. A virtual server we want, or programmed last, that the
//! overview does not show is therefore not taken as missing on its word: one
//! netlink dump of the virtual servers (without their real servers) tells
//! which exist ([`Survey::exists`]); those are read exactly, the others are
//! added. That dump also finds a skipped one of ours we do not want, unless
//! the overview showed every virtual server we want or programmed.
//!
//! What the overview does not show of a virtual server we want plain (one
//! without scheduler flags or a persistence engine), and a real server's
//! connection thresholds and tunnel settings, are not checked: we never set
//! them, so such a change made by hand is drift this does not repair.

use std::collections::BTreeSet;

use ipvs::{
    OverviewKey, OverviewService, Persistence, Service, ServiceFlags, ServiceKey,
    ServiceWithDestinations, ShownPersistence,
};

use crate::drain::Draining;
use crate::ownership::Ownership;
use crate::scope::Scope;
use crate::wanted::{Wanted, WantedService};

/// The look at the whole table, one overview entry at a time.
#[derive(Debug)]
pub struct Survey<'a> {
    wanted: &'a Wanted,
    owner: &'a Ownership,
    /// The kernel's tick rate (`HZ`), once known.
    hz: Option<u32>,
    /// Persistence the overview showed of virtual servers read exactly, to
    /// learn the tick rate from.
    ticks: Ticks,
    /// The virtual servers the overview showed.
    seen: BTreeSet<ServiceKey>,
    /// Those to read exactly.
    differing: BTreeSet<ServiceKey>,
}

impl<'a> Survey<'a> {
    /// A survey for what we `wanted`, touching what `owner` says is ours,
    /// on a kernel ticking `hz` times a second (if known).
    pub fn new(wanted: &'a Wanted, owner: &'a Ownership, hz: Option<u32>) -> Self {
        Survey {
            wanted,
            owner,
            hz,
            ticks: Ticks::new(),
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
            Some(want) => {
                !shows_as_wanted(&want.service, overview, self.hz)
                    || !same_real_servers(want, overview)
            }
            None => self.owner.owns(&key),
        };
        if differs {
            self.differing.insert(key);
            if let Some(shown) = overview.persistence {
                self.ticks.push((key, shown));
            }
        }
    }

    /// Whether a virtual server we want, or that `last` (the previous
    /// successful sync) programmed, is not in the overview: missing, or
    /// skipped by it; then [`Survey::exists`] must be told which exist.
    pub fn lacks_any(&self, last: Option<&Wanted>) -> bool {
        self.wanted
            .keys()
            .chain(last.into_iter().flat_map(|l| l.keys()))
            .any(|key| !self.seen.contains(key))
    }

    /// Takes into account that the kernel has the virtual server `key` (from
    /// a netlink dump), shown by the overview or not. One the overview
    /// skipped is read exactly if we want it or it is ours.
    pub fn exists(&mut self, key: ServiceKey) {
        // Firewall-mark virtual servers are never ours (see `Ownership`).
        if matches!(key, ServiceKey::Fwmark { .. }) || !self.seen.insert(key) {
            return;
        }
        if self.wanted.contains_key(&key) || self.owner.owns(&key) {
            self.differing.insert(key);
        }
    }

    /// The scope: what differs, what drains, and what is wanted but
    /// missing; `last` is what the previous successful sync programmed
    /// (for counting drift), if there was one. With it, the persistence the
    /// overview showed of what is to be read, for [`tick_rate`].
    pub fn scope(mut self, last: Option<&Wanted>, draining: &Draining) -> (Scope, Ticks) {
        let seen = &self.seen;
        self.differing
            .extend(draining.services().filter(|k| seen.contains(k)));
        let missing = self
            .wanted
            .keys()
            .chain(last.into_iter().flat_map(|l| l.keys()))
            .filter(|key| !seen.contains(key))
            .copied();
        let planned: BTreeSet<ServiceKey> = self.differing.iter().copied().chain(missing).collect();
        (
            Scope::of(&planned, self.differing, self.wanted, last),
            self.ticks,
        )
    }
}

/// Persistence as the overview showed it, by virtual server.
pub type Ticks = Vec<(ServiceKey, ShownPersistence)>;

/// The kernel's tick rate (`HZ`), from the persistence the overview showed
/// (`ticks`) and netlink then read (`observed`, in seconds) of the same
/// virtual servers; `None` if none of them tells.
pub fn tick_rate(ticks: &Ticks, observed: &[ServiceWithDestinations]) -> Option<u32> {
    ticks.iter().find_map(|(key, shown)| {
        let read = observed.iter().find(|s| s.service.service.key == *key)?;
        shown.hz(&read.service.service.persistence?)
    })
}

/// Whether the overview shows the virtual server as we want it. What it
/// cannot show (scheduler flags, a persistence engine, the one-packet flag
/// of an IPv6 service) cannot be checked: a virtual server that wants any
/// of them never passes, and is read exactly.
fn shows_as_wanted(want: &Service, seen: &OverviewService, hz: Option<u32>) -> bool {
    let one_packet = want.flags.contains(ServiceFlags::ONE_PACKET);
    (want.flags - ServiceFlags::ONE_PACKET).is_empty()
        && want.persistence_engine.is_none()
        && seen.one_packet.map_or(!one_packet, |ops| ops == one_packet)
        && seen.scheduler == want.scheduler
        && same_persistence(want.persistence.as_ref(), seen.persistence.as_ref(), hz)
}

/// Whether the shown persistence is the wanted one; a timeout (in ticks)
/// cannot be checked before the tick rate is known.
fn same_persistence(
    want: Option<&Persistence>,
    seen: Option<&ShownPersistence>,
    hz: Option<u32>,
) -> bool {
    match (want, seen) {
        (None, None) => true,
        (Some(want), Some(seen)) => hz.is_some_and(|hz| seen.is(want, hz)),
        _ => false,
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
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ipvs::{OverviewDestination, Persistence, Protocol, ServiceWithDestinations};

    use super::*;
    use crate::fixtures::*;

    /// The tick rate of the kernel in these tests.
    const HZ: u32 = 250;

    /// What `/proc/net/ip_vs` shows of a virtual server (IPv4).
    fn overview(have: &ServiceWithDestinations) -> OverviewService {
        let service = &have.service.service;
        OverviewService {
            key: OverviewKey::Service(service.key),
            scheduler: service.scheduler.clone(),
            one_packet: Some(service.flags.contains(ServiceFlags::ONE_PACKET)),
            persistence: service.persistence.map(|p| ShownPersistence {
                timeout_ticks: p.timeout * HZ,
                prefix_len: p.prefix_len,
            }),
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

    /// The scope a survey of `kernel` (and of `more` overview entries) finds.
    fn survey(
        wanted: &Wanted,
        kernel: &[ServiceWithDestinations],
        more: &[OverviewService],
        last: Option<&Wanted>,
        draining: &Draining,
    ) -> Scope {
        let owner = owner();
        let mut survey = Survey::new(wanted, &owner, Some(HZ));
        for s in kernel.iter().map(overview).chain(more.iter().cloned()) {
            survey.look(&s);
        }
        survey.scope(last, draining).0
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

    /// `want`, with its service changed by `edit`.
    fn edited(
        (key, want): (ServiceKey, Arc<WantedService>),
        edit: impl FnOnce(&mut Service),
    ) -> (ServiceKey, Arc<WantedService>) {
        let mut want = (*want).clone();
        edit(&mut want.service);
        (key, Arc::new(want))
    }

    #[test]
    fn a_table_as_wanted_is_out_of_scope() {
        let k = key(Protocol::Tcp, "10.96.0.10", 80);
        let persistent = |s: &mut Service| {
            s.persistence = Some(Persistence {
                timeout: 10800,
                prefix_len: 32,
            });
        };
        let wanted: Wanted = [edited(
            want(k, "rr", &[dest("10.244.0.1", 80, 1)]),
            persistent,
        )]
        .into();
        let mut kernel = have(k, "rr", vec![entry(dest("10.244.0.1", 80, 1), 4, 2)]);
        persistent(&mut kernel.service.service);
        let scope = survey(&wanted, &[kernel], &[], Some(&wanted), &no_draining());
        assert_eq!(scope, Scope::default());
    }

    #[test]
    fn any_difference_the_overview_shows_is_read() {
        let [a, b, c, d, e] = [10, 11, 12, 13, 14].map(|p| key(Protocol::Tcp, "10.96.0.10", p));
        let rs = |w| dest("10.244.0.1", 80, w);
        let wanted: Wanted = [
            want(a, "rr", &[rs(1)]),
            want(b, "rr", &[rs(1)]),
            want(c, "rr", &[rs(1), dest("10.244.0.2", 80, 1)]),
            want(d, "rr", &[rs(1)]),
            want(e, "rr", &[rs(1)]),
        ]
        .into();
        let mut persistent = have(e, "rr", vec![entry(rs(1), 0, 0)]);
        persistent.service.service.persistence = Some(Persistence {
            timeout: 60,
            prefix_len: 32,
        });
        let kernel = [
            have(a, "rr", vec![entry(rs(2), 0, 0)]),  // another weight
            have(b, "wrr", vec![entry(rs(1), 0, 0)]), // another scheduler
            have(c, "rr", vec![entry(rs(1), 0, 0)]),  // one missing
            have(
                d,
                "rr",
                vec![entry(rs(1), 0, 0), entry(dest("10.244.0.9", 80, 1), 0, 0)],
            ), // one extra
            persistent,                               // persistence added by hand
        ];
        let scope = survey(&wanted, &kernel, &[], None, &no_draining());
        assert_eq!(keys(&scope), (vec![a, b, c, d, e], vec![a, b, c, d, e]));
        assert_eq!(scope.last, Wanted::new());
    }

    #[test]
    fn what_the_overview_cannot_show_is_read_every_time() {
        let [a, b] = [80, 81].map(|p| key(Protocol::Tcp, "10.96.0.10", p));
        let v6 = key(Protocol::Udp, "fd00::10", 53);
        let rs = [dest("10.244.0.1", 80, 1)];
        let wanted: Wanted = [
            edited(want(a, "sh", &rs), |s| s.flags = ServiceFlags::SH_PORT),
            edited(want(b, "rr", &rs), |s| {
                s.persistence_engine = Some("sip".into())
            }),
            edited(want(v6, "rr", &[]), |s| s.flags = ServiceFlags::ONE_PACKET),
        ]
        .into();
        let kernel: Vec<ServiceWithDestinations> = wanted
            .values()
            .map(|w| ServiceWithDestinations {
                destinations: w.destinations.iter().map(|d| entry(*d, 0, 0)).collect(),
                ..have(w.service.key, "rr", vec![])
            })
            .map(|mut s| {
                s.service.service = wanted[&s.service.service.key].service.clone();
                s
            })
            .collect();
        let mut shown: Vec<OverviewService> = kernel.iter().map(overview).collect();
        shown[2].one_packet = None; // An IPv6 line.
        let scope = survey(&wanted, &[], &shown, Some(&wanted), &no_draining());
        assert_eq!(keys(&scope), (vec![a, b, v6], vec![a, b, v6]));
    }

    #[test]
    fn persistent_virtual_servers_are_read_until_the_tick_rate_is_known() {
        let [a, b] = [80, 81].map(|p| key(Protocol::Tcp, "10.96.0.10", p));
        let rs = [dest("10.244.0.1", 80, 1)];
        let sticky = |s: &mut Service| {
            s.persistence = Some(Persistence {
                timeout: 10800,
                prefix_len: 32,
            });
        };
        let wanted: Wanted = [edited(want(a, "rr", &rs), sticky), want(b, "rr", &rs)].into();
        let kernel: Vec<ServiceWithDestinations> = wanted
            .values()
            .map(|w| {
                let mut s = have(w.service.key, "rr", vec![entry(rs[0], 0, 0)]);
                s.service.service = w.service.clone();
                s
            })
            .collect();
        let owner = owner();
        let mut survey = Survey::new(&wanted, &owner, None);
        for s in &kernel {
            survey.look(&overview(s));
        }
        let (scope, ticks) = survey.scope(Some(&wanted), &no_draining());
        assert_eq!(keys(&scope), (vec![a], vec![a]));
        // The exact read of `a` tells the rate; from then on it passes.
        assert_eq!(tick_rate(&ticks, &kernel), Some(HZ));
        assert_eq!(tick_rate(&ticks, &kernel[1..]), None);
        let scope = survey_with(&wanted, &kernel);
        assert_eq!(scope, Scope::default());
    }

    /// `survey` of `kernel` as wanted, with the rate known.
    fn survey_with(wanted: &Wanted, kernel: &[ServiceWithDestinations]) -> Scope {
        survey(wanted, kernel, &[], Some(wanted), &no_draining())
    }

    #[test]
    fn missing_virtual_servers_are_planned_without_a_read() {
        let k = key(Protocol::Tcp, "10.96.0.10", 80);
        let wanted: Wanted = [want(k, "rr", &[dest("10.244.0.1", 80, 1)])].into();
        let scope = survey(&wanted, &[], &[], Some(&wanted), &no_draining());
        assert_eq!(keys(&scope), (vec![], vec![k]));
        // Deleted behind our back: counted as drift against `last`.
        assert_eq!(scope.last, wanted);
    }

    #[test]
    fn what_the_overview_skipped_but_a_dump_shows_is_read_not_added() {
        let shown = key(Protocol::Tcp, "10.96.0.10", 80);
        let skipped = key(Protocol::Tcp, "10.96.0.12", 80);
        let gone = key(Protocol::Tcp, "10.96.0.13", 80);
        let stray = key(Protocol::Tcp, "10.96.0.11", 80);
        let foreign = key(Protocol::Tcp, "192.0.2.1", 80);
        let fwmark = ServiceKey::Fwmark {
            af: ipvs::AddressFamily::Inet,
            mark: NonZeroU32::MIN,
        };
        let d = [dest("10.244.0.1", 80, 1)];
        let wanted: Wanted = [
            want(shown, "rr", &d),
            want(skipped, "rr", &d),
            want(gone, "rr", &d),
        ]
        .into();
        let owner = owner();
        let mut survey = Survey::new(&wanted, &owner, Some(HZ));
        survey.look(&overview(&have(shown, "rr", vec![entry(d[0], 0, 0)])));
        assert!(survey.lacks_any(None));
        for k in [shown, skipped, stray, foreign, fwmark] {
            survey.exists(k);
        }
        let scope = survey.scope(Some(&wanted), &no_draining()).0;
        // Read: the skipped one we want and our stray; planned: those we want, the
        // one the dump does not have either added without a read.
        assert_eq!(keys(&scope), (vec![stray, skipped], vec![skipped, gone]));

        let mut complete = Survey::new(&wanted, &owner, Some(HZ));
        for k in [shown, skipped, gone] {
            complete.look(&overview(&have(k, "rr", vec![entry(d[0], 0, 0)])));
        }
        assert!(!complete.lacks_any(Some(&wanted)));
    }

    #[test]
    fn ours_unwanted_is_read_and_foreign_or_fwmark_is_not() {
        let ours = key(Protocol::Tcp, "10.96.0.11", 80);
        let foreign = key(Protocol::Tcp, "192.0.2.1", 80);
        let kernel = [
            have(ours, "rr", vec![]),
            have(foreign, "rr", vec![entry(dest("10.244.0.1", 80, 1), 0, 0)]),
        ];
        let fwmark = OverviewService {
            key: OverviewKey::Fwmark(NonZeroU32::MIN),
            ..overview(&kernel[0])
        };
        let scope = survey(&Wanted::new(), &kernel, &[fwmark], None, &no_draining());
        assert_eq!(keys(&scope), (vec![ours], vec![]));
    }

    #[test]
    fn virtual_servers_with_draining_real_servers_are_read() {
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
        draining.start((a, ip("10.244.0.2"), 80), None, Instant::now());
        let scope = survey(&wanted, &kernel, &[], Some(&wanted), &draining);
        assert_eq!(keys(&scope), (vec![a], vec![a]));
    }
}

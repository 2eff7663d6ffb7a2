//! Virtual and real servers: what to add, edit, drain and delete.
//!
//! The operations come out in a safe order for one pipelined batch:
//! new and edited virtual servers, then new real servers and restored
//! weights, then real servers set to weight 0 (draining), then deletions of
//! drained real servers, and last the virtual servers left with none. New
//! real servers are in place before old ones stop taking connections, and a
//! virtual server disappears only once nothing uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ipvs::{Change, Destination, DestinationEntry, Service, ServiceKey, ServiceWithDestinations};

use crate::drain::Draining;
use crate::ownership::Ownership;
use crate::wanted::{Wanted, WantedService};

/// The operations of one sync, in apply order, and what they amount to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every operation, by phase (kept apart rather than concatenated: a
    /// first sync at 10,000 Services plans 110,000 operations).
    phases: [Vec<Change>; 5],
    /// Real servers set to weight 0 in this plan.
    pub drain_started: usize,
    /// Virtual servers of ours that stay because their real servers drain.
    pub draining_services: BTreeSet<ServiceKey>,
}

impl Plan {
    /// Every operation, in apply order.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.phases.iter().flatten()
    }

    /// The operations in apply order, as slices to apply one after another
    /// (each may be cut further).
    pub fn batches(&self) -> impl Iterator<Item = &[Change]> {
        self.phases
            .iter()
            .filter(|phase| !phase.is_empty())
            .map(Vec::as_slice)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(Vec::is_empty)
    }
}

/// Operations grouped by phase, applied in this order.
#[derive(Debug, Default)]
struct Phases {
    services: Vec<Change>,
    added: Vec<Change>,
    drains: Vec<Change>,
    deleted_destinations: Vec<Change>,
    deleted_services: Vec<Change>,
}

/// Computes the operations that take the kernel (`observed`) to `wanted`,
/// touching only virtual servers that `owner` says are ours: the whole table's
/// plan at once ([`Planner`] gives it in parts).
pub fn plan(
    wanted: &Wanted,
    observed: &[ServiceWithDestinations],
    owner: &Ownership,
    draining: &mut Draining,
    now: Instant,
) -> Plan {
    let mut planner = Planner::new(wanted, observed, owner, now);
    let plan = planner.next(draining, usize::MAX).unwrap_or_default();
    planner.finish(draining);
    plan
}

/// The plan of one sync in parts of a bounded number of operations, each in the
/// safe order for the virtual servers it covers: a first sync at 10,000
/// Services is 110,000 operations, which need not be held at once. The order
/// matters only within a virtual server, and each is planned whole in one part.
#[derive(Debug)]
pub struct Planner<'a> {
    wanted: &'a Wanted,
    observed: BTreeMap<ServiceKey, &'a ServiceWithDestinations>,
    owner: &'a Ownership,
    now: Instant,
    /// Every virtual server wanted or observed, in order; those before `next` are planned.
    keys: Vec<ServiceKey>,
    next: usize,
}

impl<'a> Planner<'a> {
    /// A planner from the kernel's table (`observed`) to `wanted`, on behalf of `owner`.
    pub fn new(
        wanted: &'a Wanted,
        observed: &'a [ServiceWithDestinations],
        owner: &'a Ownership,
        now: Instant,
    ) -> Planner<'a> {
        let observed: BTreeMap<ServiceKey, &ServiceWithDestinations> = observed
            .iter()
            .map(|s| (s.service.service.key, s))
            .collect();
        let mut keys: Vec<ServiceKey> = wanted.keys().chain(observed.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        Planner {
            wanted,
            observed,
            owner,
            now,
            keys,
            next: 0,
        }
    }

    /// The plan of the next virtual servers, about `budget` operations (more when one
    /// virtual server alone needs more); `None` once every one is planned.
    pub fn next(&mut self, draining: &mut Draining, budget: usize) -> Option<Plan> {
        if self.next == self.keys.len() {
            return None;
        }
        let mut phases = Phases::default();
        let mut plan = Plan::default();
        let mut planned = 0;
        while let Some(key) = self.keys.get(self.next) {
            if planned >= budget {
                break;
            }
            self.next += 1;
            self.one(key, draining, &mut phases, &mut plan);
            planned = phases.len();
        }
        plan.phases = phases.into_array();
        Some(plan)
    }

    /// Forgets the clocks of real servers that are gone or wanted again, once the
    /// whole table is planned.
    pub fn finish(self, draining: &mut Draining) {
        draining.retain(|(key, addr, port)| {
            let wanted_again = self
                .wanted
                .get(key)
                .is_some_and(|w| w.destinations.contains(*addr, *port));
            !wanted_again && self.observed.contains_key(key)
        });
    }

    /// The operations of one virtual server.
    fn one(&self, key: &ServiceKey, draining: &mut Draining, phases: &mut Phases, plan: &mut Plan) {
        let now = self.now;
        match (self.wanted.get(key), self.observed.get(key)) {
            (Some(want), None) => {
                phases
                    .services
                    .push(Change::AddService(want.service.clone()));
                for dest in &want.destinations {
                    phases.added.push(Change::AddDestination(*key, *dest));
                }
            }
            (Some(want), Some(have)) => {
                if !same_service(&want.service, &have.service.service) {
                    phases
                        .services
                        .push(Change::EditService(want.service.clone()));
                }
                sync_destinations(want, have, draining, now, phases, plan);
            }
            (None, Some(have)) if self.owner.owns(key) => {
                let before = phases.deleted_destinations.len();
                for entry in &have.destinations {
                    drain(*key, entry, None, draining, now, phases, plan);
                }
                if phases.deleted_destinations.len() - before == have.destinations.len() {
                    phases.deleted_services.push(Change::DeleteService(*key));
                } else {
                    plan.draining_services.insert(*key);
                }
            }
            (None, _) => {}
        }
    }
}

impl Phases {
    /// How many operations so far.
    fn len(&self) -> usize {
        self.services.len()
            + self.added.len()
            + self.drains.len()
            + self.deleted_destinations.len()
            + self.deleted_services.len()
    }

    /// The phases in apply order.
    fn into_array(self) -> [Vec<Change>; 5] {
        [
            self.services,
            self.added,
            self.drains,
            self.deleted_destinations,
            self.deleted_services,
        ]
    }
}

/// Real servers of a virtual server we want: add, restore, update, drain.
fn sync_destinations(
    want: &WantedService,
    have: &ServiceWithDestinations,
    draining: &mut Draining,
    now: Instant,
    phases: &mut Phases,
    plan: &mut Plan,
) {
    let key = want.service.key;
    let present: BTreeMap<_, &DestinationEntry> = have
        .destinations
        .iter()
        .map(|e| ((e.destination.addr, e.destination.port), e))
        .collect();
    for dest in &want.destinations {
        match present.get(&(dest.addr, dest.port)) {
            None => phases.added.push(Change::AddDestination(key, *dest)),
            // A draining real server that came back gets its weight again here.
            Some(entry) if entry.destination != *dest => {
                phases.added.push(Change::EditDestination(key, *dest))
            }
            Some(_) => {}
        }
    }
    for (addr_port, entry) in &present {
        if !want.destinations.contains(addr_port.0, addr_port.1) {
            drain(key, entry, want.drain_timeout, draining, now, phases, plan);
        }
    }
}

/// One real server that must go, as kube-proxy's `GracefulDeleteRS`: deleted at
/// once when it has no connection at all, or is UDP or SCTP; otherwise (TCP) to
/// weight 0 first, deleted once drained or after `timeout` (its virtual server's
/// own bound; the default when `None`).
fn drain(
    key: ServiceKey,
    entry: &DestinationEntry,
    timeout: Option<Duration>,
    draining: &mut Draining,
    now: Instant,
    phases: &mut Phases,
    plan: &mut Plan,
) {
    let dest = entry.destination;
    let rs = (key, dest.addr, dest.port);
    let delete = if !crate::drain::drains(key) || crate::drain::idle(entry) {
        true
    } else if dest.weight != 0 {
        phases.drains.push(Change::EditDestination(
            key,
            Destination { weight: 0, ..dest },
        ));
        draining.start(rs, timeout, now);
        plan.drain_started += 1;
        false
    } else {
        draining.may_delete(rs, entry, timeout, now)
    };
    if delete {
        draining.forget(rs);
        phases.deleted_destinations.push(Change::DeleteDestination {
            service: key,
            addr: dest.addr,
            port: dest.port,
        });
    }
}

/// Whether the kernel's virtual server has the attributes we want. The
/// kernel adds flags of its own (hashed), which are not ours to compare.
pub(crate) fn same_service(want: &Service, have: &Service) -> bool {
    want.scheduler == have.scheduler
        && want.persistence == have.persistence
        && want.flags == have.flags
        && want.persistence_engine == have.persistence_engine
}

#[cfg(test)]
mod tests;

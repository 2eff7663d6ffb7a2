//! Virtual and real servers: what to add, edit, drain and delete.
//!
//! The operations come out in a safe order for one pipelined batch:
//! new and edited virtual servers, then new real servers and restored
//! weights, then real servers set to weight 0 (draining), then deletions of
//! drained real servers, and last the virtual servers left with none. New
//! real servers are in place before old ones stop taking connections, and a
//! virtual server disappears only once nothing uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

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
#[derive(Default)]
struct Phases {
    services: Vec<Change>,
    added: Vec<Change>,
    drains: Vec<Change>,
    deleted_destinations: Vec<Change>,
    deleted_services: Vec<Change>,
}

/// Computes the operations that take the kernel (`observed`) to `wanted`,
/// touching only virtual servers that `owner` says are ours.
pub fn plan(
    wanted: &Wanted,
    observed: &[ServiceWithDestinations],
    owner: &Ownership,
    draining: &mut Draining,
    now: Instant,
) -> Plan {
    let observed: BTreeMap<ServiceKey, &ServiceWithDestinations> = observed
        .iter()
        .map(|s| (s.service.service.key, s))
        .collect();
    let mut phases = Phases::default();
    let mut plan = Plan::default();

    for (key, want) in wanted {
        match observed.get(key) {
            None => {
                phases
                    .services
                    .push(Change::AddService(want.service.clone()));
                for dest in &want.destinations {
                    phases.added.push(Change::AddDestination(*key, *dest));
                }
            }
            Some(have) => {
                if !same_service(&want.service, &have.service.service) {
                    phases
                        .services
                        .push(Change::EditService(want.service.clone()));
                }
                sync_destinations(want, have, draining, now, &mut phases, &mut plan);
            }
        }
    }
    for (key, have) in &observed {
        if wanted.contains_key(key) || !owner.owns(key) {
            continue;
        }
        let before = phases.deleted_destinations.len();
        for entry in &have.destinations {
            drain(*key, entry, draining, now, &mut phases, &mut plan);
        }
        if phases.deleted_destinations.len() - before == have.destinations.len() {
            phases.deleted_services.push(Change::DeleteService(*key));
        } else {
            plan.draining_services.insert(*key);
        }
    }
    // Forget the clocks of real servers that are gone or wanted again.
    draining.retain(|(key, addr, port)| {
        let wanted_again = wanted.get(key).is_some_and(|w| w.destinations.contains(*addr, *port));
        let deleted = phases.deleted_destinations.iter().any(|c| {
            matches!(c, Change::DeleteDestination { service, addr: a, port: p } if service == key && a == addr && p == port)
        });
        !wanted_again && !deleted && observed.contains_key(key)
    });

    let Phases {
        services,
        added,
        drains,
        deleted_destinations,
        deleted_services,
    } = phases;
    plan.phases = [
        services,
        added,
        drains,
        deleted_destinations,
        deleted_services,
    ];
    plan
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
            drain(key, entry, draining, now, phases, plan);
        }
    }
}

/// One real server that must go: to weight 0 first, deleted once drained.
fn drain(
    key: ServiceKey,
    entry: &DestinationEntry,
    draining: &mut Draining,
    now: Instant,
    phases: &mut Phases,
    plan: &mut Plan,
) {
    let dest = entry.destination;
    let rs = (key, dest.addr, dest.port);
    if dest.weight != 0 {
        phases.drains.push(Change::EditDestination(
            key,
            Destination { weight: 0, ..dest },
        ));
        draining.start(rs, now);
        plan.drain_started += 1;
    } else if draining.may_delete(rs, entry, now) {
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

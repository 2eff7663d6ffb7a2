//! Undoing a restore: what every change applied from the input did, so
//! that when the kernel refuses a line the changes already applied can be
//! reverted, newest first, and the table is as it was before the restore.
//!
//! The journal follows the table from the state read before the first
//! change (only when the input edits or deletes something: additions undo
//! without knowing it) through every change the kernel accepted. Each
//! accepted change records its inverse against that state: an addition is
//! undone by a deletion, an edit by an edit back to the previous values, a
//! deletion (or `-C`) by adding the service back with every real server it
//! had, `--set` by the previous timeouts. Counters and connections are not
//! part of a rule and cannot be put back: a real server deleted and added
//! back starts from zero, and `-Z` is not undone.

use std::collections::HashMap;

use ipvs::{Change, Destination, Service, ServiceKey, ServiceWithDestinations, Timeouts};

use crate::restore::Step;

/// A service as the journal knows it.
#[derive(Debug, Clone)]
struct Known {
    service: Service,
    destinations: Vec<Destination>,
}

/// What undoes one applied step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    /// Changes to send in this order.
    Changes(Vec<Change>),
    /// Timeouts to set back.
    Timeouts(Timeouts),
}

/// The state of the table as the restore changes it, and the undo of each
/// applied step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal {
    services: HashMap<ServiceKey, Known>,
    undo: Vec<Undo>,
}

/// Why a change cannot be undone: the kernel accepted it, but the journal
/// did not know the entry it changed (someone else changed the table while
/// the restore ran).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot undo \"{0}\": the table changed outside this restore")]
pub(crate) struct Unknown(pub(crate) String);

/// Whether undoing `steps` needs the table as it is before them: any edit,
/// deletion or flush does; additions and `--set` (whose previous timeouts
/// are read when it is applied) do not.
pub(crate) fn needs_table(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Flush(_) => true,
        Step::Changes(c) => c
            .iter()
            .any(|(_, c)| !matches!(c, Change::AddService(_) | Change::AddDestination(..))),
        Step::SetTimeouts(..) | Step::Zero(..) => false,
    })
}

impl Journal {
    /// A journal starting from `table` (empty when the steps only add).
    pub(crate) fn new(table: Vec<ServiceWithDestinations>) -> Self {
        let services = table
            .into_iter()
            .map(|s| {
                let service = s.service.service;
                let destinations = s.destinations.into_iter().map(|d| d.destination).collect();
                (
                    service.key,
                    Known {
                        service,
                        destinations,
                    },
                )
            })
            .collect();
        Journal {
            services,
            undo: Vec::new(),
        }
    }

    /// Records a change the kernel accepted.
    ///
    /// # Errors
    /// The change edits or deletes an entry the journal does not know.
    pub(crate) fn applied(&mut self, change: &Change) -> Result<(), Unknown> {
        let unknown = || Unknown(change.to_string());
        let inverse = match change {
            Change::AddService(s) => {
                self.services.insert(
                    s.key,
                    Known {
                        service: s.clone(),
                        destinations: Vec::new(),
                    },
                );
                vec![Change::DeleteService(s.key)]
            }
            Change::EditService(s) => {
                let known = self.services.get_mut(&s.key).ok_or_else(unknown)?;
                let before = std::mem::replace(&mut known.service, s.clone());
                vec![Change::EditService(before)]
            }
            Change::DeleteService(key) => {
                let known = self.services.remove(key).ok_or_else(unknown)?;
                recreate(known)
            }
            Change::AddDestination(key, d) => {
                let known = self.services.get_mut(key).ok_or_else(unknown)?;
                known.destinations.push(*d);
                vec![Change::DeleteDestination {
                    service: *key,
                    addr: d.addr,
                    port: d.port,
                }]
            }
            Change::EditDestination(key, d) => {
                let known = self.services.get_mut(key).ok_or_else(unknown)?;
                let slot = known
                    .destinations
                    .iter_mut()
                    .find(|k| (k.addr, k.port) == (d.addr, d.port))
                    .ok_or_else(unknown)?;
                let before = std::mem::replace(slot, *d);
                vec![Change::EditDestination(*key, before)]
            }
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => {
                let known = self.services.get_mut(service).ok_or_else(unknown)?;
                let at = known
                    .destinations
                    .iter()
                    .position(|k| (k.addr, k.port) == (*addr, *port))
                    .ok_or_else(unknown)?;
                let before = known.destinations.remove(at);
                vec![Change::AddDestination(*service, before)]
            }
            _ => return Err(unknown()),
        };
        self.undo.push(Undo::Changes(inverse));
        Ok(())
    }

    /// The errno the kernel refuses `change` with in the table as the
    /// journal knows it, for the refusals that depend on the table alone
    /// (what exists); `None` when it would be accepted as far as that goes.
    pub(crate) fn refusal(&self, change: &Change) -> Option<i32> {
        let dest = |key: &ServiceKey, addr, port| {
            self.services.get(key).map(|k| {
                k.destinations
                    .iter()
                    .any(|d| (d.addr, d.port) == (addr, port))
            })
        };
        match change {
            Change::AddService(s) => self.services.contains_key(&s.key).then_some(libc::EEXIST),
            Change::EditService(s) => (!self.services.contains_key(&s.key)).then_some(libc::ESRCH),
            Change::DeleteService(key) => (!self.services.contains_key(key)).then_some(libc::ESRCH),
            Change::AddDestination(key, d) => match dest(key, d.addr, d.port) {
                None => Some(libc::ESRCH),
                Some(true) => Some(libc::EEXIST),
                Some(false) => None,
            },
            Change::EditDestination(key, d) => match dest(key, d.addr, d.port) {
                None => Some(libc::ESRCH),
                Some(false) => Some(libc::ENOENT),
                Some(true) => None,
            },
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => match dest(service, *addr, *port) {
                None => Some(libc::ESRCH),
                Some(false) => Some(libc::ENOENT),
                Some(true) => None,
            },
            _ => None,
        }
    }

    /// Whether a service exists in the table as the journal knows it.
    pub(crate) fn has(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }

    /// Records a flush the kernel accepted.
    pub(crate) fn flushed(&mut self) {
        let mut all: Vec<Known> = self.services.drain().map(|(_, k)| k).collect();
        all.sort_by_key(|k| k.service.key);
        self.undo
            .push(Undo::Changes(all.into_iter().flat_map(recreate).collect()));
    }

    /// Records timeouts set over `before`.
    pub(crate) fn timeouts_set(&mut self, before: Timeouts) {
        self.undo.push(Undo::Timeouts(before));
    }

    /// How many applied steps there are to undo.
    pub(crate) fn len(&self) -> usize {
        self.undo.len()
    }

    /// What undoes everything recorded, in the order to apply it:
    /// consecutive changes joined into one batch.
    pub(crate) fn into_undo(self) -> Vec<Undo> {
        let mut out: Vec<Undo> = Vec::new();
        for undo in self.undo.into_iter().rev() {
            match (out.last_mut(), undo) {
                (Some(Undo::Changes(batch)), Undo::Changes(more)) => batch.extend(more),
                (_, undo) => out.push(undo),
            }
        }
        out
    }
}

/// The changes that create a service again with its real servers.
fn recreate(known: Known) -> Vec<Change> {
    let key = known.service.key;
    std::iter::once(Change::AddService(known.service))
        .chain(
            known
                .destinations
                .into_iter()
                .map(move |d| Change::AddDestination(key, d)),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::{DestinationEntry, ForwardMethod, Protocol, Scheduler, ServiceEntry};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::inet(Protocol::Tcp, "10.0.0.1".parse().unwrap(), port)
    }

    fn dest(last: u8, weight: u32) -> Destination {
        Destination::new(
            [10, 244, 0, last].into(),
            8080,
            ForwardMethod::Masquerade,
            weight,
        )
    }

    fn table() -> Vec<ServiceWithDestinations> {
        vec![ServiceWithDestinations {
            service: ServiceEntry {
                service: Service::new(key(80), Scheduler::RoundRobin),
                stats: Default::default(),
            },
            destinations: [dest(1, 1), dest(2, 1)]
                .into_iter()
                .map(|destination| DestinationEntry {
                    destination,
                    active_connections: 0,
                    inactive_connections: 0,
                    persistent_connections: 0,
                    stats: Default::default(),
                })
                .collect(),
        }]
    }

    /// Applies `changes` to a model of the table, as the kernel would.
    fn model(table: &mut HashMap<ServiceKey, (Service, Vec<Destination>)>, changes: &[Change]) {
        for c in changes {
            match c {
                Change::AddService(s) => {
                    table.insert(s.key, (s.clone(), Vec::new()));
                }
                Change::EditService(s) => table.get_mut(&s.key).unwrap().0 = s.clone(),
                Change::DeleteService(k) => {
                    table.remove(k);
                }
                Change::AddDestination(k, d) => table.get_mut(k).unwrap().1.push(*d),
                Change::EditDestination(k, d) => {
                    let ds = &mut table.get_mut(k).unwrap().1;
                    *ds.iter_mut().find(|x| x.addr == d.addr).unwrap() = *d;
                }
                Change::DeleteDestination { service, addr, .. } => {
                    table
                        .get_mut(service)
                        .unwrap()
                        .1
                        .retain(|x| x.addr != *addr);
                }
                _ => unreachable!(),
            }
        }
    }

    fn sorted(
        table: &HashMap<ServiceKey, (Service, Vec<Destination>)>,
    ) -> Vec<(Service, Vec<Destination>)> {
        let mut v: Vec<_> = table
            .values()
            .map(|(s, d)| {
                let mut d = d.clone();
                d.sort_by_key(|d| (d.addr, d.port));
                (s.clone(), d)
            })
            .collect();
        v.sort_by_key(|(s, _)| s.key);
        v
    }

    #[test]
    fn undoing_every_kind_of_change_gives_the_table_back() {
        let before: HashMap<_, _> = table()
            .into_iter()
            .map(|s| {
                let ds = s.destinations.iter().map(|d| d.destination).collect();
                (s.service.service.key, (s.service.service, ds))
            })
            .collect();
        let mut edited = Service::new(key(80), Scheduler::WeightedRoundRobin);
        edited.flags = ipvs::ServiceFlags::SCHED1;
        let changes = [
            Change::EditService(edited),
            Change::EditDestination(key(80), dest(1, 7)),
            Change::DeleteDestination {
                service: key(80),
                addr: [10, 244, 0, 2].into(),
                port: 8080,
            },
            Change::AddService(Service::new(key(81), Scheduler::RoundRobin)),
            Change::AddDestination(key(81), dest(3, 1)),
            Change::AddDestination(key(80), dest(4, 1)),
            Change::DeleteService(key(80)),
        ];
        let mut journal = Journal::new(table());
        let mut now = before.clone();
        for c in &changes {
            journal.applied(c).unwrap();
            model(&mut now, std::slice::from_ref(c));
        }
        assert_ne!(sorted(&now), sorted(&before));
        assert_eq!(journal.len(), changes.len());
        let undo = journal.into_undo();
        let [Undo::Changes(undo)] = undo.as_slice() else {
            panic!("{undo:?}")
        };
        model(&mut now, undo);
        assert_eq!(sorted(&now), sorted(&before));
    }

    #[test]
    fn a_flush_is_undone_by_every_service_again() {
        let mut journal = Journal::new(table());
        journal.flushed();
        journal.timeouts_set(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        });
        journal
            .applied(&Change::AddService(Service::new(
                key(90),
                Scheduler::RoundRobin,
            )))
            .unwrap();
        let undo = journal.into_undo();
        assert_eq!(undo.len(), 3, "{undo:?}");
        assert_eq!(undo[0], Undo::Changes(vec![Change::DeleteService(key(90))]));
        assert!(matches!(undo[1], Undo::Timeouts(t) if t.tcp == 900));
        let Undo::Changes(recreate) = &undo[2] else {
            panic!()
        };
        assert_eq!(recreate.len(), 3);
        assert_eq!(
            recreate[0],
            Change::AddService(Service::new(key(80), Scheduler::RoundRobin))
        );
    }

    #[test]
    fn refusals_that_depend_on_the_table_are_predicted() {
        let journal = Journal::new(table());
        let svc = |port| Service::new(key(port), Scheduler::RoundRobin);
        let del = |port, last| Change::DeleteDestination {
            service: key(port),
            addr: [10, 244, 0, last].into(),
            port: 8080,
        };
        let cases = [
            (Change::AddService(svc(80)), Some(libc::EEXIST)),
            (Change::AddService(svc(81)), None),
            (Change::EditService(svc(81)), Some(libc::ESRCH)),
            (Change::EditService(svc(80)), None),
            (Change::DeleteService(key(81)), Some(libc::ESRCH)),
            (
                Change::AddDestination(key(80), dest(1, 3)),
                Some(libc::EEXIST),
            ),
            (
                Change::AddDestination(key(81), dest(1, 3)),
                Some(libc::ESRCH),
            ),
            (Change::AddDestination(key(80), dest(9, 3)), None),
            (
                Change::EditDestination(key(80), dest(9, 3)),
                Some(libc::ENOENT),
            ),
            (Change::EditDestination(key(80), dest(2, 3)), None),
            (del(80, 9), Some(libc::ENOENT)),
            (del(81, 1), Some(libc::ESRCH)),
            (del(80, 1), None),
        ];
        for (change, errno) in cases {
            assert_eq!(journal.refusal(&change), errno, "{change}");
        }
        assert!(journal.has(&key(80)) && !journal.has(&key(81)));
    }

    #[test]
    fn unknown_entries_and_what_needs_the_table() {
        let mut journal = Journal::new(Vec::new());
        assert!(journal.applied(&Change::DeleteService(key(80))).is_err());
        assert!(
            journal
                .applied(&Change::EditDestination(key(80), dest(1, 1)))
                .is_err()
        );
        let adds = Step::Changes(vec![(
            1,
            Change::AddService(Service::new(key(80), Scheduler::RoundRobin)),
        )]);
        assert!(!needs_table(std::slice::from_ref(&adds)));
        assert!(needs_table(&[adds.clone(), Step::Flush(None)]));
        assert!(needs_table(&[Step::Changes(vec![(
            2,
            Change::DeleteService(key(80))
        )])]));
    }
}

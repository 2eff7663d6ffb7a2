//! The kernel's IPVS table in memory, refusing what the kernel refuses:
//! adding a virtual or real server that exists (`EEXIST`), changing or
//! deleting one that does not (`ESRCH` for a virtual server, `ENOENT` for a
//! real server). A real server deleted while it still has connections goes
//! to the kernel's trash, unlisted, and adding it again brings it back with
//! its connections. With a tick rate set ([`Table::proc_hz`]) the table
//! also shows itself as `/proc/net/ip_vs` does (persistence timeouts in
//! ticks, the one-packet flag only for IPv4, fwmark services without their
//! family); without, there is no such file and full syncs read the table
//! through netlink.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipvs::{
    AddressFamily, Change, Destination, DestinationEntry, ErrorKind, Object, Operation,
    OverviewDestination, OverviewKey, OverviewService, Service, ServiceEntry, ServiceFlags,
    ServiceKey, ServiceWithDestinations, ShownPersistence, Stats,
};

use crate::ipvs::IpvsKernel;

/// The table, shared by the dataplane and the test.
#[derive(Debug, Default)]
pub(crate) struct Table {
    services: BTreeMap<ServiceKey, (Service, Vec<DestinationEntry>)>,
    trash: Vec<(ServiceKey, DestinationEntry)>,
    /// The virtual servers' counters (those never counted are zero).
    counters: BTreeMap<ServiceKey, Stats>,
    /// Whether reading the table fails.
    pub(crate) unreadable: bool,
    /// Operations applied successfully.
    pub(crate) applied: usize,
    /// The kernel's tick rate (`HZ`) when `/proc/net/ip_vs` exists.
    pub(crate) proc_hz: Option<u32>,
    /// Virtual servers read exactly (through netlink), every read counted.
    pub(crate) exact_reads: usize,
    /// Virtual servers `/proc/net/ip_vs` leaves out, as Linux 6.1 does while
    /// another network namespace has virtual servers: every namespace's are in one
    /// table, and each `read` of the file restarts at a position counted over this
    /// namespace's only, while stepping within a read counts every namespace's.
    pub(crate) skipped_by_overview: BTreeSet<ServiceKey>,
    /// Makes the next application wait.
    pub(crate) hold: Option<Hold>,
}

/// An application of operations held inside the kernel until the test lets it go on.
#[derive(Debug)]
pub(crate) struct Hold {
    /// Told when the application waits.
    pub(crate) entered: tokio::sync::oneshot::Sender<()>,
    /// Lets it go on.
    pub(crate) released: std::sync::mpsc::Receiver<()>,
}

/// A handle on the shared table.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeIpvs(Arc<Mutex<Table>>);

fn refused(op: Operation, object: String, errno: i32) -> ipvs::Error {
    ipvs::Error::Kernel {
        op,
        object: Object(object),
        kind: ErrorKind::from_errno(op, errno),
        errno,
        text: None,
    }
}

fn entry(destination: Destination) -> DestinationEntry {
    DestinationEntry {
        destination,
        active_connections: 0,
        inactive_connections: 0,
        persistent_connections: 0,
        stats: Stats::default(),
    }
}

fn at(addr: IpAddr, port: u16) -> impl Fn(&DestinationEntry) -> bool {
    move |d| d.destination.addr == addr && d.destination.port == port
}

impl Table {
    /// Every virtual server, as `ipvsadm -Ln` lists them (in key order).
    pub(crate) fn listing(&self) -> Vec<ServiceWithDestinations> {
        self.listed(|_| true)
    }

    /// The virtual servers `wanted` picks, each with its real servers, copied from the
    /// table without copying the others.
    fn listed(&self, wanted: impl Fn(&ServiceKey) -> bool) -> Vec<ServiceWithDestinations> {
        self.services
            .iter()
            .filter(|(key, _)| wanted(key))
            .map(|(_, (service, destinations))| ServiceWithDestinations {
                service: self.entry(service),
                destinations: destinations.clone(),
            })
            .collect()
    }

    /// The virtual servers as `/proc/net/ip_vs` shows them on a kernel ticking
    /// `hz` times a second (kernel `ip_vs_info_seq_show`).
    fn overview(&self, hz: u32) -> impl Iterator<Item = OverviewService> + '_ {
        let shown = |(key, _): &(&ServiceKey, _)| !self.skipped_by_overview.contains(*key);
        self.services
            .iter()
            .filter(shown)
            .map(move |(_, (service, destinations))| {
                let ipv4 = service.key.af() == AddressFamily::Inet;
                OverviewService {
                    key: match service.key {
                        ServiceKey::Fwmark { mark, .. } => OverviewKey::Fwmark(mark),
                        key @ ServiceKey::Inet { .. } => OverviewKey::Service(key),
                    },
                    scheduler: service.scheduler.clone(),
                    one_packet: ipv4.then(|| service.flags.contains(ServiceFlags::ONE_PACKET)),
                    persistence: service.persistence.map(|p| ShownPersistence {
                        timeout_ticks: p.timeout * hz,
                        prefix_len: p.prefix_len,
                    }),
                    destinations: destinations
                        .iter()
                        .map(|d| OverviewDestination {
                            addr: d.destination.addr,
                            port: d.destination.port,
                            forward: d.destination.forward.name(),
                            weight: d.destination.weight,
                            active_connections: d.active_connections,
                            inactive_connections: d.inactive_connections,
                        })
                        .collect(),
                }
            })
    }

    fn entry(&self, service: &Service) -> ServiceEntry {
        ServiceEntry {
            service: service.clone(),
            stats: self.counters.get(&service.key).copied().unwrap_or_default(),
        }
    }

    /// Sets the counters of a virtual server, or of its real server at
    /// `dest` (traffic counted).
    pub(crate) fn count(&mut self, key: &ServiceKey, dest: Option<(IpAddr, u16)>, stats: Stats) {
        match dest {
            None if self.services.contains_key(key) => {
                self.counters.insert(*key, stats);
            }
            None => {}
            Some((addr, port)) => {
                if let Some((_, dests)) = self.services.get_mut(key)
                    && let Some(d) = dests.iter_mut().find(|d| at(addr, port)(d))
                {
                    d.stats = stats;
                }
            }
        }
    }

    /// Sets the connection counts of a real server (traffic flowing).
    pub(crate) fn connections(&mut self, key: &ServiceKey, addr: IpAddr, port: u16, active: u32) {
        if let Some((_, dests)) = self.services.get_mut(key)
            && let Some(d) = dests.iter_mut().find(|d| at(addr, port)(d))
        {
            d.active_connections = active;
        }
    }

    /// Changes the table behind the dataplane's back, as `ipvsadm` would.
    ///
    /// # Errors
    /// What the kernel refuses.
    pub(crate) fn apply_by_hand(&mut self, change: &Change) -> Result<(), ipvs::Error> {
        self.apply(change)?;
        self.applied -= 1;
        Ok(())
    }

    /// A change by hand that the kernel accepts.
    pub(crate) fn by_hand(&mut self, change: &Change) {
        self.apply_by_hand(change)
            .expect("a change by hand applies");
    }

    fn apply(&mut self, change: &Change) -> Result<(), ipvs::Error> {
        let object = format!(" {change:?}");
        let missing = |op| refused(op, object.clone(), libc::ESRCH);
        match change {
            Change::AddService(s) => {
                if self.services.contains_key(&s.key) {
                    return Err(refused(Operation::AddService, object, libc::EEXIST));
                }
                self.services.insert(s.key, (s.clone(), Vec::new()));
            }
            Change::EditService(s) => {
                let (service, _) = self
                    .services
                    .get_mut(&s.key)
                    .ok_or_else(|| missing(Operation::EditService))?;
                *service = s.clone();
            }
            Change::DeleteService(key) => {
                self.services
                    .remove(key)
                    .ok_or_else(|| missing(Operation::DeleteService))?;
                self.counters.remove(key);
            }
            Change::AddDestination(key, d) => {
                let (_, dests) = self
                    .services
                    .get_mut(key)
                    .ok_or_else(|| missing(Operation::AddDestination))?;
                if dests.iter().any(at(d.addr, d.port)) {
                    return Err(refused(Operation::AddDestination, object, libc::EEXIST));
                }
                let trashed = self
                    .trash
                    .iter()
                    .position(|(k, t)| k == key && at(d.addr, d.port)(t));
                let mut added = match trashed {
                    Some(i) => self.trash.remove(i).1,
                    None => entry(*d),
                };
                added.destination = *d;
                dests.push(added);
            }
            Change::EditDestination(key, d) => {
                let (_, dests) = self
                    .services
                    .get_mut(key)
                    .ok_or_else(|| missing(Operation::EditDestination))?;
                let found = dests
                    .iter_mut()
                    .find(|e| at(d.addr, d.port)(e))
                    .ok_or_else(|| refused(Operation::EditDestination, object, libc::ENOENT))?;
                found.destination = *d;
            }
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => {
                let (_, dests) = self
                    .services
                    .get_mut(service)
                    .ok_or_else(|| missing(Operation::DeleteDestination))?;
                let i = dests
                    .iter()
                    .position(at(*addr, *port))
                    .ok_or_else(|| refused(Operation::DeleteDestination, object, libc::ENOENT))?;
                let gone = dests.remove(i);
                if gone.active_connections + gone.inactive_connections > 0 {
                    self.trash.push((*service, gone));
                }
            }
            _ => return Err(refused(Operation::Apply, object, libc::EINVAL)),
        }
        self.applied += 1;
        Ok(())
    }
}

impl FakeIpvs {
    /// The table.
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> Result<MutexGuard<'_, Table>, ipvs::Error> {
        let table = self.table();
        if table.unreadable {
            return Err(refused(Operation::ListServices, String::new(), libc::EPERM));
        }
        Ok(table)
    }
}

impl IpvsKernel for FakeIpvs {
    fn apply(&mut self, changes: &[Change]) -> Vec<Result<(), ipvs::Error>> {
        let hold = self.table().hold.take();
        if let Some(Hold { entered, released }) = hold {
            // The test may have stopped listening; then it does not hold the table either.
            let _ = entered.send(());
            let _ = released.recv();
        }
        let mut table = self.table();
        changes.iter().map(|c| table.apply(c)).collect()
    }

    fn list(&mut self) -> Result<Vec<ServiceWithDestinations>, ipvs::Error> {
        let mut table = self.read()?;
        table.exact_reads += table.services.len();
        Ok(table.listing())
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, ipvs::Error> {
        let table = self.read()?;
        Ok(table
            .services
            .values()
            .map(|(s, _)| table.entry(s))
            .collect())
    }

    fn list_only(
        &mut self,
        keys: &BTreeSet<ServiceKey>,
    ) -> Result<Vec<ServiceWithDestinations>, ipvs::Error> {
        let mut table = self.read()?;
        let listing = table.listed(|key| keys.contains(key));
        table.exact_reads += listing.len();
        Ok(listing)
    }

    fn overview(&mut self, each: &mut dyn FnMut(&OverviewService)) -> Result<(), ipvs::Error> {
        let table = self.read()?;
        let hz = table.proc_hz.ok_or_else(|| ipvs::Error::Io {
            op: Operation::ReadOverview,
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        table.overview(hz).for_each(|s| each(&s));
        Ok(())
    }

    fn load_scheduler(&mut self, _name: &str) -> Result<(), hostnet::ModuleError> {
        Ok(())
    }
}

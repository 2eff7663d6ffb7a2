//! The owned handle: one socket, blocking calls.

use std::io::Seek as _;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch;
use crate::change::Change;
use crate::config::Timeouts;
use crate::destination::{Destination, DestinationEntry};
use crate::error::{Error, ErrorKind, Object, Operation};
use crate::info::Info;
use crate::message::{self, Attrs, CmdAttr, Command, IpvsMessage};
use crate::overview::{OverviewService, read_overview};
use crate::rules::{DestinationRule, ServiceRules, Shown};
use crate::service::{Service, ServiceEntry, ServiceKey};
use crate::socket::Transport;

/// A service with its real servers, as [`Client::list`] returns them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceWithDestinations {
    /// The service and its counters.
    pub service: ServiceEntry,
    /// Its real servers and their counters, in kernel order.
    pub destinations: Vec<DestinationEntry>,
}

/// A connection to IPVS in one network namespace.
///
/// Blocking: each call sends its request(s) and waits for the kernel's
/// answer, which IPVS gives synchronously (it holds one global mutex per
/// operation), so calls are short. Use it from a dedicated thread in an
/// async program (e.g. `tokio::task::spawn_blocking`). A `Client` is not
/// shared: calls take `&mut self`.
///
/// # Examples
/// ```no_run
/// # fn main() -> Result<(), ipvs::Error> {
/// use ipvs::{Client, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceKey};
/// let mut ipvs = Client::new()?;
/// let key = ServiceKey::inet(Protocol::Tcp, "10.96.0.10".parse().unwrap(), 53);
/// ipvs.add_service(&Service::new(key, Scheduler::RoundRobin))?;
/// ipvs.add_destination(&key, &Destination::new("10.244.1.5".parse().unwrap(), 53, ForwardMethod::Masquerade, 1))?;
/// for s in ipvs.list()? {
///     println!("{} {} ({} real servers)", s.service.service.key, s.service.service.scheduler, s.destinations.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    t: Transport,
    /// `/proc/net/ip_vs` of the socket's namespace, opened with it (the
    /// file shows the namespace it was opened in), or why it could not be.
    overview: std::io::Result<std::fs::File>,
}

impl Client {
    /// Connects to IPVS in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`Error::NotAvailable`] when the kernel has no IPVS (the `ip_vs`
    /// module is not loaded and cannot be), [`Error::Io`] when the socket
    /// cannot be opened.
    pub fn new() -> Result<Self, Error> {
        Ok(Client {
            t: Transport::open()?,
            overview: std::fs::File::open(crate::overview::PATH),
        })
    }

    /// Connects to IPVS in the network namespace at `path` (e.g.
    /// `/run/netns/NAME` or `/proc/PID/ns/net`). IPVS tables are per
    /// namespace; the socket stays bound to that namespace for its life.
    /// The calling thread does not change namespace.
    ///
    /// # Errors
    /// As [`Client::new`], plus [`Error::Io`] when the namespace cannot be
    /// entered (not root, no such file).
    pub fn in_netns(path: impl AsRef<Path>) -> Result<Self, Error> {
        let io = Error::io(Operation::Connect);
        let ns = std::fs::File::open(path.as_ref()).map_err(io)?;
        // A scoped helper thread enters the namespace, opens the socket
        // there and ends; the socket keeps the namespace.
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| Error::io(Operation::Connect)(e.into()))?;
                Client::new()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::io(Operation::Connect)(std::io::Error::other(
                    "namespace helper thread panicked",
                )))
            })
        })
    }

    /// Version and connection table size (`ipvsadm`'s header line).
    ///
    /// # Errors
    /// [`Error::Kernel`] (e.g. permission denied), [`Error::Io`], [`Error::Decode`].
    #[doc(alias = "IPVS_CMD_GET_INFO")]
    pub fn info(&mut self) -> Result<Info, Error> {
        const OP: Operation = Operation::GetInfo;
        let reply = self.get(
            OP,
            Object::default(),
            IpvsMessage::new(Command::GetInfo, vec![]),
        )?;
        match reply.attrs {
            Attrs::Info(attrs) => Info::from_attrs(&attrs).map_err(Error::decode(OP)),
            Attrs::Cmd(_) => Err(Error::Decode {
                op: OP,
                reason: format!("reply has command {} instead of SET_INFO", reply.cmd),
            }),
        }
    }

    /// The connection timeouts (`ipvsadm -L --timeout`).
    ///
    /// # Errors
    /// As [`Client::info`].
    #[doc(alias = "IPVS_CMD_GET_CONFIG")]
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let msg = IpvsMessage::new(Command::GetConfig, vec![]);
        let reply = self.get(Operation::GetTimeouts, Object::default(), msg)?;
        Ok(Timeouts::from_attrs(reply.cmd_attrs()))
    }

    /// Sets the connection timeouts; zero fields are left unchanged
    /// (`ipvsadm --set`).
    ///
    /// # Errors
    /// [`Error::Kernel`] with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// for values the kernel cannot represent.
    #[doc(alias = "IPVS_CMD_SET_CONFIG")]
    pub fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        let msg = IpvsMessage::new(Command::SetConfig, timeouts.to_attrs());
        self.ack(Operation::SetTimeouts, Object::default(), msg)
    }

    /// Creates a service (`ipvsadm -A`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceExists`](crate::ErrorKind::ServiceExists),
    /// [`ErrorKind::SchedulerNotFound`](crate::ErrorKind::SchedulerNotFound),
    /// [`Error::InvalidInput`] for names longer than the kernel accepts.
    #[doc(alias = "IPVS_CMD_NEW_SERVICE")]
    pub fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        self.apply_one(Change::AddService(service.clone()))
    }

    /// Changes a service in place (`ipvsadm -E`): scheduler, flags,
    /// persistence and persistence engine are replaced by `service`'s.
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound),
    /// [`ErrorKind::SchedulerNotFound`](crate::ErrorKind::SchedulerNotFound).
    #[doc(alias = "IPVS_CMD_SET_SERVICE")]
    pub fn edit_service(&mut self, service: &Service) -> Result<(), Error> {
        self.apply_one(Change::EditService(service.clone()))
    }

    /// Deletes a service and its real servers (`ipvsadm -D`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound).
    #[doc(alias = "IPVS_CMD_DEL_SERVICE")]
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        self.apply_one(Change::DeleteService(*key))
    }

    /// Adds a real server (`ipvsadm -a`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound),
    /// [`ErrorKind::DestinationExists`](crate::ErrorKind::DestinationExists),
    /// [`ErrorKind::OutOfRange`](crate::ErrorKind::OutOfRange) (weight,
    /// thresholds), [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// (e.g. a family mix without tunnelling).
    #[doc(alias = "IPVS_CMD_NEW_DEST")]
    pub fn add_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.apply_one(Change::AddDestination(*service, *dest))
    }

    /// Changes a real server in place (`ipvsadm -e`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound),
    /// [`ErrorKind::DestinationNotFound`](crate::ErrorKind::DestinationNotFound).
    #[doc(alias = "IPVS_CMD_SET_DEST")]
    pub fn edit_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.apply_one(Change::EditDestination(*service, *dest))
    }

    /// Removes a real server (`ipvsadm -d`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound),
    /// [`ErrorKind::DestinationNotFound`](crate::ErrorKind::DestinationNotFound).
    #[doc(alias = "IPVS_CMD_DEL_DEST")]
    pub fn delete_destination(
        &mut self,
        service: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), Error> {
        self.apply_one(Change::DeleteDestination {
            service: *service,
            addr,
            port,
        })
    }

    /// Applies many changes at once, pipelined: requests go out in large
    /// batches before their acknowledgements are read, so 100,000 changes
    /// cost a few hundred `sendmsg` calls instead of 100,000 round trips.
    /// Changes are applied in order; each gets its own result, and a
    /// failing change does not stop the others.
    ///
    /// # Examples
    /// ```no_run
    /// # fn main() -> Result<(), ipvs::Error> {
    /// # let changes: Vec<ipvs::Change> = vec![];
    /// let mut ipvs = ipvs::Client::new()?;
    /// for (change, result) in changes.iter().zip(ipvs.apply(&changes)) {
    ///     if let Err(e) = result {
    ///         eprintln!("{change}: {e}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn apply(&mut self, changes: &[Change]) -> Vec<Result<(), Error>> {
        batch::apply(&mut self.t, changes)
    }

    fn apply_one(&mut self, change: Change) -> Result<(), Error> {
        let mut results = self.apply(std::slice::from_ref(&change));
        results.pop().unwrap_or(Ok(()))
    }

    /// One service and its counters.
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound).
    #[doc(alias = "IPVS_CMD_GET_SERVICE")]
    pub fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, Error> {
        const OP: Operation = Operation::GetService;
        let msg = IpvsMessage::new(Command::GetService, vec![CmdAttr::Service(key.to_attrs())]);
        let reply = self.get(OP, Object(key.to_string()), msg)?;
        decode_service(OP, &reply)
    }

    /// Every service and its counters, in kernel (hash) order.
    ///
    /// IPVS dumps are not snapshots: they resume by position, so a service
    /// added or deleted meanwhile can make another one appear twice or not
    /// at all. Duplicates are dropped here; call again for a table that is
    /// certain to be complete after concurrent changes.
    ///
    /// # Errors
    /// [`Error::Kernel`] (permission denied), [`Error::Io`], [`Error::Decode`],
    /// [`Error::DumpInterrupted`].
    #[doc(alias = "IPVS_CMD_GET_SERVICE")]
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        const OP: Operation = Operation::ListServices;
        let msg = IpvsMessage::new(Command::GetService, vec![]);
        let entries = self.dump(OP, Object::default(), msg, |cmd, attrs, out| {
            let reply = message::parse_data(cmd, attrs).map_err(Error::decode(OP))?;
            out.push(decode_service(OP, &reply)?);
            Ok(())
        })?;
        Ok(dedup_by_key(entries, |e| e.service.key))
    }

    /// The real servers of a service, newest first (kernel order). A
    /// missing service has none: the kernel does not report an error.
    /// Duplicates from a dump moving under concurrent changes are dropped,
    /// as in [`Client::services`].
    ///
    /// # Errors
    /// As [`Client::services`].
    #[doc(alias = "IPVS_CMD_GET_DEST")]
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, Error> {
        const OP: Operation = Operation::ListDestinations;
        let msg = IpvsMessage::new(Command::GetDest, vec![CmdAttr::Service(key.to_attrs())]);
        let af = key.af();
        // The hot path of a table dump: destinations are decoded in place.
        let entries = self.dump(OP, Object(key.to_string()), msg, |_, attrs, out| {
            for attr in crate::nla::iter(attrs) {
                let (kind, value) = attr.map_err(Error::decode(OP))?;
                if kind == message::IPVS_CMD_ATTR_DEST {
                    out.push(DestinationEntry::parse_nest(value, af).map_err(Error::decode(OP))?);
                }
            }
            Ok(())
        })?;
        Ok(dedup_by_key(entries, |e| {
            (e.destination.addr, e.destination.port)
        }))
    }

    /// The whole table: every service with its real servers (one dump for
    /// the services, then one per service).
    ///
    /// # Errors
    /// As [`Client::services`].
    pub fn list(&mut self) -> Result<Vec<ServiceWithDestinations>, Error> {
        self.list_with_progress(|_, _| {})
    }

    /// [`Client::list`], calling `progress(done, total)` after each
    /// service's real servers are read (`total`: the number of services).
    ///
    /// # Errors
    /// As [`Client::services`].
    pub fn list_with_progress(
        &mut self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<ServiceWithDestinations>, Error> {
        let services = self.services()?;
        let total = services.len();
        services
            .into_iter()
            .enumerate()
            .map(|(i, service)| {
                let listed = self.with_destinations(service);
                progress(i + 1, total);
                listed
            })
            .collect()
    }

    /// The table as `ipvsadm -S` saves it (see [`ServiceRules`]): one
    /// netlink dump for the services, their real servers from
    /// `/proc/net/ip_vs` (read on a second thread during the services'
    /// dump) where it shows them completely, and one netlink
    /// dump for each other service (fwmark services, services with a
    /// tunnelled real server, services the file left out because another
    /// namespace has services too; every service when the file cannot be
    /// read).
    /// Calls `progress(done, total)` after each service (`total`: the
    /// number of services).
    ///
    /// # Errors
    /// As [`Client::services`].
    pub fn rules_with_progress(
        &mut self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<ServiceRules>, Error> {
        // The file is read on a thread of its own while the services are
        // dumped: the kernel's walk of its service table for every page of
        // the file is most of the time a large table takes to save.
        let file = self.overview_file();
        let (services, shown) = std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut shown = Shown::default();
                read_overview(std::io::BufReader::with_capacity(1 << 16, file?), |s| {
                    shown.add(s)
                })?;
                Ok(shown)
            });
            let services = self.services();
            let shown = reader.join().unwrap_or_else(|_| {
                Err(Error::io(Operation::ReadOverview)(std::io::Error::other(
                    "the thread reading it panicked",
                )))
            });
            (services, shown)
        });
        let services = services?;
        let mut shown = shown.unwrap_or_else(|e: Error| {
            // Netlink alone gives the same table, one dump per service.
            tracing::debug!(error = %e, "reading the real servers with netlink");
            Shown::default()
        });
        let total = services.len();
        services
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let service = entry.service;
                let destinations = match shown.take(&service.key) {
                    Some(destinations) => destinations,
                    None => self
                        .destinations(&service.key)?
                        .iter()
                        .map(|e| DestinationRule::from(&e.destination))
                        .collect(),
                };
                progress(i + 1, total);
                Ok(ServiceRules {
                    service,
                    destinations,
                })
            })
            .collect()
    }

    /// Part of the table: the services with these keys and their real
    /// servers (one `IPVS_CMD_GET_SERVICE` and one destination dump each),
    /// in the order of `keys`; keys the kernel does not have are left out.
    /// Costs what the keys cost, whatever the size of the table.
    ///
    /// # Errors
    /// As [`Client::services`].
    pub fn list_only<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a ServiceKey>,
    ) -> Result<Vec<ServiceWithDestinations>, Error> {
        let mut listed = Vec::new();
        for key in keys {
            match self.service(key) {
                Ok(service) => listed.push(self.with_destinations(service)?),
                Err(e) if e.kind() == Some(ErrorKind::ServiceNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(listed)
    }

    fn with_destinations(
        &mut self,
        service: ServiceEntry,
    ) -> Result<ServiceWithDestinations, Error> {
        Ok(ServiceWithDestinations {
            destinations: self.destinations(&service.service.key)?,
            service,
        })
    }

    /// Reads the table's overview, `/proc/net/ip_vs` (see
    /// [`read_overview`](crate::read_overview)): every virtual server with
    /// its real servers' weights and connection counts, one at a time, in a
    /// few `read` calls for the whole table instead of one netlink dump per
    /// service. It lacks thresholds, scheduler flags, persistence engines,
    /// tunnel settings and counters: read what it shows differs with
    /// [`Client::list_only`]. It may leave services out while other
    /// namespaces have IPVS services (see [`read_overview`](crate::read_overview)).
    ///
    /// # Errors
    /// [`Error::Io`] when the file could not be opened with the client (no
    /// procfs) or read, [`Error::Decode`] for a line it does not understand.
    pub fn overview(&mut self, each: impl FnMut(&OverviewService)) -> Result<(), Error> {
        let file = self.overview_file()?;
        read_overview(std::io::BufReader::with_capacity(1 << 16, file), each)
    }

    /// The client's `/proc/net/ip_vs`, at its start, as a handle of its own
    /// (sharing the client's open file).
    fn overview_file(&self) -> Result<std::fs::File, Error> {
        const OP: Operation = Operation::ReadOverview;
        let mut file = match &self.overview {
            Ok(file) => file.try_clone().map_err(Error::io(OP))?,
            Err(e) => return Err(Error::io(OP)(std::io::Error::new(e.kind(), e.to_string()))),
        };
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(Error::io(OP))?;
        Ok(file)
    }

    /// Zeroes the counters of one service and its real servers, or of
    /// everything (`ipvsadm -Z`).
    ///
    /// # Errors
    /// [`ErrorKind::ServiceNotFound`](crate::ErrorKind::ServiceNotFound).
    #[doc(alias = "IPVS_CMD_ZERO")]
    pub fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), Error> {
        let attrs = service
            .map(|k| CmdAttr::Service(k.to_attrs()))
            .into_iter()
            .collect();
        let object = Object(service.map(ToString::to_string).unwrap_or_default());
        self.ack(
            Operation::Zero,
            object,
            IpvsMessage::new(Command::Zero, attrs),
        )
    }

    /// Deletes every service (`ipvsadm -C`).
    ///
    /// # Errors
    /// [`Error::Kernel`] (permission denied), [`Error::Io`].
    #[doc(alias = "IPVS_CMD_FLUSH")]
    pub fn flush(&mut self) -> Result<(), Error> {
        self.ack(
            Operation::Flush,
            Object::default(),
            IpvsMessage::new(Command::Flush, vec![]),
        )
    }

    /// Sends one request and returns its data replies, once acknowledged.
    fn request(
        &mut self,
        op: Operation,
        object: Object,
        msg: IpvsMessage,
    ) -> Result<Vec<IpvsMessage>, Error> {
        let mut bytes = Vec::new();
        message::encode(&mut bytes, self.t.family(), msg);
        let mut data = Vec::new();
        self.t
            .socket()
            .request(&mut bytes, |frame| {
                if let netlink::Body::Data { payload, .. } = frame.body {
                    let (cmd, attrs) = message::genl(payload).map_err(Error::decode(op))?;
                    data.push(message::parse_data(cmd, attrs).map_err(Error::decode(op))?);
                }
                Ok(())
            })
            .map_err(failed(op, object))?;
        Ok(data)
    }

    fn ack(&mut self, op: Operation, object: Object, msg: IpvsMessage) -> Result<(), Error> {
        self.request(op, object, msg).map(drop)
    }

    /// A request answered by exactly one data message.
    fn get(
        &mut self,
        op: Operation,
        object: Object,
        msg: IpvsMessage,
    ) -> Result<IpvsMessage, Error> {
        let mut replies = self.request(op, object, msg)?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok(reply),
            _ => Err(Error::Decode {
                op,
                reason: "expected exactly one reply message".into(),
            }),
        }
    }

    /// Runs a dump to its end, redone when the kernel flags it
    /// inconsistent (`NLM_F_DUMP_INTR`) or replies were dropped (`ENOBUFS`).
    /// `decode` turns each data message (command, attributes) into entries.
    fn dump<T>(
        &mut self,
        op: Operation,
        object: Object,
        msg: IpvsMessage,
        mut decode: impl FnMut(u8, &[u8], &mut Vec<T>) -> Result<(), Error>,
    ) -> Result<Vec<T>, Error> {
        let mut bytes = Vec::new();
        message::encode(&mut bytes, self.t.family(), msg);
        self.t
            .socket()
            .dump(&mut bytes, |frame, out| match frame.body {
                netlink::Body::Data { payload, .. } => {
                    let (cmd, attrs) = message::genl(payload).map_err(Error::decode(op))?;
                    decode(cmd, attrs, out)
                }
                _ => Ok(()),
            })
            .map_err(failed(op, object))
    }
}

/// A failed exchange of `op` on `object` as the client's error.
fn failed(op: Operation, object: Object) -> impl FnOnce(netlink::Failed<Error>) -> Error {
    move |e| match e {
        netlink::Failed::Netlink(e) => Error::netlink(op, object)(e),
        netlink::Failed::Caller(e) => e,
    }
}

/// Keeps the first of the entries sharing a key, in order.
fn dedup_by_key<T, K: std::hash::Hash + Eq>(entries: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|e| seen.insert(key(e)))
        .collect()
}

fn decode_service(op: Operation, reply: &IpvsMessage) -> Result<ServiceEntry, Error> {
    reply
        .cmd_attrs()
        .iter()
        .find_map(|attr| match attr {
            CmdAttr::Service(attrs) => {
                Some(ServiceEntry::from_attrs(attrs).map_err(Error::decode(op)))
            }
            _ => None,
        })
        .unwrap_or_else(|| {
            Err(Error::Decode {
                op,
                reason: "service reply without IPVS_CMD_ATTR_SERVICE".into(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon moves a client to a blocking thread.
    #[test]
    fn a_client_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Client>();
    }

    #[test]
    fn duplicates_from_a_moving_dump_are_dropped_in_order() {
        let kept = dedup_by_key(vec![(1, 'a'), (2, 'b'), (1, 'c'), (3, 'd')], |e| e.0);
        assert_eq!(kept, vec![(1, 'a'), (2, 'b'), (3, 'd')]);
    }
}

//! The handle: one netfilter netlink socket and the kernel's type revisions.

use std::collections::HashMap;

use crate::error::{Errno, Error, Op};
use crate::wire::{self, cmd};
use crate::{Entry, ListedSet, Member, SetName, SetSpec, SetType};

/// A connection to the kernel's ipset subsystem in the network namespace of
/// the thread that opened it.
///
/// ```no_run
/// use ipset::{Entry, Family, HashLimits, Ipset, SetSpec, SetType};
/// let mut ipset = Ipset::open()?;
/// let spec = SetSpec::hash("KUBE-CLUSTER-IP".parse()?, SetType::HashIpPort, Family::Inet, HashLimits::default())?;
/// let desired = ["10.96.0.10,udp:53", "10.96.0.1,tcp:443"].map(|e| e.parse::<Entry>().map(Into::into));
/// let report = ipset.sync_set(&spec, &desired.into_iter().collect::<Result<Vec<_>, _>>()?)?;
/// println!("added {}, deleted {}", report.added, report.deleted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Ipset {
    socket: nfnetlink::Socket,
    /// Highest revision the kernel has, per type and family.
    revisions: HashMap<(SetType, u8), u8>,
}

fn set_target(name: &SetName) -> String {
    format!("set {name}")
}

impl Ipset {
    /// Opens a netfilter netlink socket.
    ///
    /// # Errors
    /// When the socket cannot be opened (no netlink, no permission).
    pub fn open() -> Result<Self, Error> {
        Ok(Ipset {
            socket: nfnetlink::Socket::open().map_err(Error::Open)?,
            revisions: HashMap::new(),
        })
    }

    /// The protocol versions the kernel speaks, `(min, max)`
    /// (`IPSET_CMD_PROTOCOL`). This crate speaks version 6.
    ///
    /// # Errors
    /// When the kernel has no ipset support.
    #[doc(alias = "IPSET_CMD_PROTOCOL")]
    pub fn protocol(&mut self) -> Result<(u8, u8), Error> {
        let replies = self
            .socket
            .request(wire::set::protocol())
            .map_err(|e| Error::from_netlink(Op::Protocol, "ipset", e))?;
        let reply = replies.first().ok_or_else(|| {
            Error::from_netlink(
                Op::Protocol,
                "ipset",
                nfnetlink::ParseError("no protocol reply").into(),
            )
        })?;
        wire::set::parse_protocol(&reply.attrs)
            .map_err(|e| Error::from_netlink(Op::Protocol, "ipset", e.into()))
    }

    /// The highest revision of the set type the kernel has, as `ipset` uses.
    fn revision(&mut self, spec: &SetSpec) -> Result<u8, Error> {
        let family = wire::set::family_of(spec);
        let key = (spec.set_type(), family);
        if let Some(&r) = self.revisions.get(&key) {
            return Ok(r);
        }
        let target = format!("type {}", spec.set_type());
        let replies = self
            .socket
            .request(wire::set::type_query(spec.set_type(), family))
            .map_err(|e| Error::from_netlink(Op::Type, &target, e))?;
        let reply = replies.first().ok_or_else(|| {
            Error::from_netlink(
                Op::Type,
                &target,
                nfnetlink::ParseError("no type reply").into(),
            )
        })?;
        let revision = wire::set::parse_type(&reply.attrs)
            .map_err(|e| Error::from_netlink(Op::Type, &target, e.into()))?;
        self.revisions.insert(key, revision);
        Ok(revision)
    }

    /// Every set with its members, in one dump (`ipset list`).
    ///
    /// # Errors
    /// When the dump fails.
    #[doc(alias = "IPSET_CMD_LIST")]
    pub fn list(&mut self) -> Result<Vec<ListedSet>, Error> {
        self.dump(None, "all sets")
    }

    /// One set with its members, or `None` when there is no such set.
    ///
    /// # Errors
    /// When the dump fails for another reason.
    pub fn get(&mut self, name: &SetName) -> Result<Option<ListedSet>, Error> {
        match self.dump(Some(name), &set_target(name)) {
            Ok(sets) => Ok(sets.into_iter().find(|s| &s.name == name)),
            Err(e) if e.errno() == Some(Errno::NO_SUCH_SET) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dump(&mut self, name: Option<&SetName>, target: &str) -> Result<Vec<ListedSet>, Error> {
        let replies = self
            .socket
            .dump(wire::list::list(name))
            .map_err(|e| Error::from_netlink(Op::List, target, e))?;
        wire::list::parse(&replies).map_err(|e| Error::from_netlink(Op::List, target, e.into()))
    }

    /// Creates the set at the kernel's highest revision of its type. Like
    /// `ipset create -exist`, succeeds when an identical set exists.
    ///
    /// # Errors
    /// [`Errno::SET_EXISTS`] when a different set of that name exists,
    /// [`Errno::FIND_TYPE`] when the kernel lacks the type.
    #[doc(alias = "IPSET_CMD_CREATE")]
    pub fn create(&mut self, spec: &SetSpec) -> Result<(), Error> {
        let revision = self.revision(spec)?;
        self.command(
            Op::Create,
            set_target(spec.name()),
            wire::set::create(spec, revision),
        )
    }

    /// Destroys the set; succeeds when there is no such set.
    ///
    /// # Errors
    /// [`Errno::BUSY`] when an iptables rule still references it.
    #[doc(alias = "IPSET_CMD_DESTROY")]
    pub fn destroy(&mut self, name: &SetName) -> Result<(), Error> {
        match self.command(
            Op::Destroy,
            set_target(name),
            wire::set::named(cmd::DESTROY, name),
        ) {
            Err(e) if e.errno() == Some(Errno::NO_SUCH_SET) => Ok(()),
            other => other,
        }
    }

    /// Removes every member of the set.
    ///
    /// # Errors
    /// When there is no such set.
    #[doc(alias = "IPSET_CMD_FLUSH")]
    pub fn flush(&mut self, name: &SetName) -> Result<(), Error> {
        self.command(
            Op::Flush,
            set_target(name),
            wire::set::named(cmd::FLUSH, name),
        )
    }

    /// Renames a set.
    ///
    /// # Errors
    /// When `to` exists or `from` is referenced.
    #[doc(alias = "IPSET_CMD_RENAME")]
    pub fn rename(&mut self, from: &SetName, to: &SetName) -> Result<(), Error> {
        let target = format!("set {from} to {to}");
        self.command(
            Op::Rename,
            target,
            wire::set::two_names(cmd::RENAME, from, to),
        )
    }

    /// Swaps the contents of two sets atomically: rules referencing either
    /// name see the other's members from then on.
    ///
    /// # Errors
    /// [`Errno::TYPE_MISMATCH`] when their types or families differ.
    #[doc(alias = "IPSET_CMD_SWAP")]
    pub fn swap(&mut self, a: &SetName, b: &SetName) -> Result<(), Error> {
        let target = format!("sets {a} and {b}");
        self.command(Op::Swap, target, wire::set::two_names(cmd::SWAP, a, b))
    }

    fn command(
        &mut self,
        op: Op,
        target: String,
        message: nfnetlink::Message,
    ) -> Result<(), Error> {
        self.socket
            .request(message)
            .map(drop)
            .map_err(|e| Error::from_netlink(op, target, e))
    }

    /// Adds members, many per system call; members already present are kept
    /// (their comment updated). Each member succeeds or fails alone.
    ///
    /// # Errors
    /// [`Error::Mismatch`] before sending anything when a member does not
    /// fit `spec`; [`Error::Members`] listing the members the kernel refused.
    #[doc(alias = "IPSET_CMD_ADD")]
    pub fn add(&mut self, spec: &SetSpec, members: &[Member]) -> Result<(), Error> {
        for m in members {
            if !m.entry.fits(spec) || (m.comment.is_some() && !spec.comments()) {
                return Err(Error::Mismatch {
                    op: Op::Add,
                    set: spec.name().to_string(),
                    entry: m.entry,
                    spec: spec.to_string(),
                });
            }
        }
        self.members(Op::Add, cmd::ADD, spec.name(), members)
    }

    /// Deletes members, many per system call; absent members are ignored.
    ///
    /// # Errors
    /// [`Error::Members`] listing the members the kernel refused.
    #[doc(alias = "IPSET_CMD_DEL")]
    pub fn del(&mut self, name: &SetName, entries: &[Entry]) -> Result<(), Error> {
        let members: Vec<Member> = entries.iter().copied().map(Member::new).collect();
        self.members(Op::Del, cmd::DEL, name, &members)
    }

    fn members(
        &mut self,
        op: Op,
        command: u8,
        name: &SetName,
        members: &[Member],
    ) -> Result<(), Error> {
        let messages = members.iter().map(|m| wire::adt::member(command, name, m));
        let results = self
            .socket
            .batch(messages)
            .map_err(|e| Error::from_netlink(op, set_target(name), e))?;
        Error::members(op, name.as_str(), members, &results)
    }

    /// Whether the set holds `entry`.
    ///
    /// # Errors
    /// When there is no such set or the entry does not suit it.
    #[doc(alias = "IPSET_CMD_TEST")]
    pub fn test(&mut self, name: &SetName, entry: &Entry) -> Result<bool, Error> {
        let message = wire::adt::member(cmd::TEST, name, &Member::new(*entry));
        match self.command(Op::Test, format!("set {name} entry {entry}"), message) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::EXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

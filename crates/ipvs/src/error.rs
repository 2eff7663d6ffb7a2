//! Errors: which operation failed, on which object, and what the kernel's
//! errno means for that operation.

use std::fmt;
use std::io;

/// An IPVS operation, named as a user would (`add service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Opening the netlink socket and resolving the `IPVS` family.
    Connect,
    /// `IPVS_CMD_GET_INFO`.
    GetInfo,
    /// `IPVS_CMD_GET_CONFIG`.
    GetTimeouts,
    /// `IPVS_CMD_SET_CONFIG`.
    SetTimeouts,
    /// `IPVS_CMD_NEW_SERVICE`.
    AddService,
    /// `IPVS_CMD_SET_SERVICE`.
    EditService,
    /// `IPVS_CMD_DEL_SERVICE`.
    DeleteService,
    /// `IPVS_CMD_GET_SERVICE` for one service.
    GetService,
    /// `IPVS_CMD_GET_SERVICE` dump.
    ListServices,
    /// `IPVS_CMD_NEW_DEST`.
    AddDestination,
    /// `IPVS_CMD_SET_DEST`.
    EditDestination,
    /// `IPVS_CMD_DEL_DEST`.
    DeleteDestination,
    /// `IPVS_CMD_GET_DEST` dump.
    ListDestinations,
    /// `IPVS_CMD_ZERO`.
    Zero,
    /// `IPVS_CMD_FLUSH`.
    Flush,
    /// Reading `/proc/net/ip_vs`.
    ReadOverview,
    /// Sending or receiving a batch of changes ([`Client::apply`](crate::Client::apply)).
    Apply,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connect to IPVS",
            Operation::GetInfo => "get IPVS info",
            Operation::GetTimeouts => "get timeouts",
            Operation::SetTimeouts => "set timeouts",
            Operation::AddService => "add service",
            Operation::EditService => "edit service",
            Operation::DeleteService => "delete service",
            Operation::GetService => "get service",
            Operation::ListServices => "list services",
            Operation::AddDestination => "add destination",
            Operation::EditDestination => "edit destination",
            Operation::DeleteDestination => "delete destination",
            Operation::ListDestinations => "list destinations",
            Operation::Zero => "zero counters",
            Operation::Flush => "flush",
            Operation::ReadOverview => "read /proc/net/ip_vs",
            Operation::Apply => "apply changes",
        })
    }
}

/// What a kernel errno means for the operation that got it.
///
/// The same errno means different things per operation: `ENOENT` is an
/// unknown scheduler for service commands but a missing destination for
/// destination commands; "no such service" is `ESRCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `EEXIST` on add service.
    ServiceExists,
    /// `ESRCH`: the service does not exist.
    ServiceNotFound,
    /// `EEXIST` on add destination.
    DestinationExists,
    /// `ENOENT` on edit/delete destination.
    DestinationNotFound,
    /// `ENOENT` on add/edit service: no scheduler or persistence engine
    /// module of that name could be loaded.
    SchedulerNotFound,
    /// `EINVAL`: missing or malformed attributes, an address that is not
    /// unicast, a family mix the forwarding method does not allow...
    InvalidArgument,
    /// `ERANGE`: weight above `i32::MAX`, or lower threshold above upper.
    OutOfRange,
    /// `EAFNOSUPPORT`: the family is not supported (IPv6 disabled?).
    AddressFamilyNotSupported,
    /// `EPERM`: `CAP_NET_ADMIN` is needed, even to read.
    PermissionDenied,
    /// Another errno.
    Other,
}

impl ErrorKind {
    /// Interprets `errno` (positive) for `op`.
    pub fn from_errno(op: Operation, errno: i32) -> Self {
        use Operation::*;
        match (errno, op) {
            (libc::EEXIST, AddService) => ErrorKind::ServiceExists,
            (libc::EEXIST, AddDestination) => ErrorKind::DestinationExists,
            (libc::ESRCH, _) => ErrorKind::ServiceNotFound,
            (libc::ENOENT, AddService | EditService) => ErrorKind::SchedulerNotFound,
            (libc::ENOENT, EditDestination | DeleteDestination) => ErrorKind::DestinationNotFound,
            (libc::EINVAL, _) => ErrorKind::InvalidArgument,
            (libc::ERANGE, _) => ErrorKind::OutOfRange,
            (libc::EAFNOSUPPORT, _) => ErrorKind::AddressFamilyNotSupported,
            (libc::EPERM, _) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::ServiceExists => "service already exists",
            ErrorKind::ServiceNotFound => "no such service",
            ErrorKind::DestinationExists => "destination already exists",
            ErrorKind::DestinationNotFound => "no such destination",
            ErrorKind::SchedulerNotFound => "scheduler or persistence engine module not found",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::OutOfRange => "value out of range",
            ErrorKind::AddressFamilyNotSupported => "address family not supported",
            ErrorKind::PermissionDenied => "permission denied (CAP_NET_ADMIN needed)",
            ErrorKind::Other => "kernel error",
        })
    }
}

/// The object an operation was about, for messages: `TCP 10.0.0.1:80`,
/// `TCP 10.0.0.1:80 -> 10.244.1.5:8080`, or nothing for global operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Object(pub String);

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " {}", self.0)
        }
    }
}

/// An IPVS client error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `IPVS` generic netlink family does not exist in this kernel (the
    /// `ip_vs` module is not loaded and could not be auto-loaded, or the
    /// kernel lacks IPVS).
    #[error(
        "IPVS is not available: no generic netlink family \"IPVS\" (is the ip_vs module loaded?)"
    )]
    NotAvailable,
    /// The kernel refused an operation.
    #[error(
        "{op}{object}: {kind} ({}){}",
        io::Error::from_raw_os_error(*errno),
        netlink::KernelText(text.as_deref())
    )]
    Kernel {
        /// What was attempted.
        op: Operation,
        /// On what.
        object: Object,
        /// What the errno means for that operation.
        kind: ErrorKind,
        /// The errno (positive).
        errno: i32,
        /// The kernel's extended-ack text (`NLMSGERR_ATTR_MSG`), when it
        /// gave one.
        text: Option<String>,
    },
    /// The request was refused before sending (e.g. a name too long).
    #[error("{op}{object}: invalid input: {reason}")]
    InvalidInput {
        /// What was attempted.
        op: Operation,
        /// On what.
        object: Object,
        /// Why it was refused.
        reason: String,
    },
    /// The acknowledgement of a batched operation was lost because the
    /// socket's receive buffer overflowed (`ENOBUFS`): it may or may not
    /// have been applied. Read the table back to know.
    #[error("{op}{object}: acknowledgement lost (netlink receive buffer overflow); state unknown")]
    AckLost {
        /// What was attempted.
        op: Operation,
        /// On what.
        object: Object,
    },
    /// The socket failed.
    #[error("{op}: netlink socket: {source}")]
    Io {
        /// What was attempted.
        op: Operation,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The kernel's reply could not be decoded.
    #[error("{op}: malformed reply from the kernel: {reason}")]
    Decode {
        /// What was attempted.
        op: Operation,
        /// What was wrong.
        reason: String,
    },
    /// A dump was interrupted (`NLM_F_DUMP_INTR` or `ENOBUFS`) on every
    /// attempt.
    #[error("{op}: dump interrupted {attempts} times in a row")]
    DumpInterrupted {
        /// What was attempted.
        op: Operation,
        /// How many times it was tried.
        attempts: u32,
    },
}

impl Error {
    /// The kernel error's meaning, if the kernel refused the operation.
    ///
    /// # Examples
    /// ```no_run
    /// # fn main() -> Result<(), ipvs::Error> {
    /// use ipvs::{Client, ErrorKind, Protocol, Scheduler, Service, ServiceKey};
    /// let mut ipvs = Client::new()?;
    /// let svc = Service::new(ServiceKey::inet(Protocol::Tcp, "10.0.0.1".parse().unwrap(), 80), Scheduler::RoundRobin);
    /// match ipvs.add_service(&svc) {
    ///     Err(e) if e.kind() == Some(ErrorKind::ServiceExists) => ipvs.edit_service(&svc)?,
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Kernel { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The kernel's errno (positive), if the kernel refused the operation.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The kernel's refusal `nack` of `op` on `object`.
    pub(crate) fn kernel(op: Operation, object: Object, nack: netlink::Nack) -> Self {
        Error::Kernel {
            op,
            object,
            kind: ErrorKind::from_errno(op, nack.errno),
            errno: nack.errno,
            text: nack.message,
        }
    }

    pub(crate) fn io(op: Operation) -> impl FnOnce(io::Error) -> Self {
        move |source| Error::Io { op, source }
    }

    /// The shared socket's error `e` for `op` on `object`.
    pub(crate) fn netlink(op: Operation, object: Object) -> impl FnOnce(netlink::Error) -> Self {
        move |e| match e {
            netlink::Error::Io(source) => Error::Io { op, source },
            netlink::Error::Kernel(nack) => Error::kernel(op, object, nack),
            netlink::Error::Lost => Error::AckLost { op, object },
            netlink::Error::DumpInterrupted(attempts) => Error::DumpInterrupted { op, attempts },
            netlink::Error::Malformed(m) => Error::Decode {
                op,
                reason: m.to_string(),
            },
            other => Error::Io {
                op,
                source: io::Error::other(other.to_string()),
            },
        }
    }

    pub(crate) fn decode(op: Operation) -> impl FnOnce(netlink_packet_core::DecodeError) -> Self {
        move |e| Error::Decode {
            op,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_meaning_depends_on_the_operation() {
        use Operation::*;
        assert_eq!(
            ErrorKind::from_errno(AddService, libc::ENOENT),
            ErrorKind::SchedulerNotFound
        );
        assert_eq!(
            ErrorKind::from_errno(DeleteDestination, libc::ENOENT),
            ErrorKind::DestinationNotFound
        );
        assert_eq!(
            ErrorKind::from_errno(AddDestination, libc::ESRCH),
            ErrorKind::ServiceNotFound
        );
        assert_eq!(
            ErrorKind::from_errno(AddDestination, libc::EEXIST),
            ErrorKind::DestinationExists
        );
        assert_eq!(ErrorKind::from_errno(Flush, libc::EIO), ErrorKind::Other);
    }

    #[test]
    fn messages_name_operation_object_and_errno() {
        let e = Error::kernel(
            Operation::AddDestination,
            Object("TCP 10.96.0.10:53 -> 10.244.1.5:53".into()),
            nack(libc::EEXIST, None),
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "add destination TCP 10.96.0.10:53 -> 10.244.1.5:53: destination already exists ("
            ),
            "{msg}"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let flush = Error::kernel(Operation::Flush, Object::default(), nack(libc::EPERM, None));
        assert!(
            flush.to_string().starts_with("flush: permission denied"),
            "{flush}"
        );
    }

    fn nack(errno: i32, message: Option<&str>) -> netlink::Nack {
        netlink::Nack {
            index: 0,
            seq: 1,
            errno,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn a_refusal_with_the_kernels_text_ends_with_it() {
        let e = Error::kernel(
            Operation::AddService,
            Object::default(),
            nack(libc::EINVAL, Some("Attribute failed policy validation")),
        );
        let msg = e.to_string();
        assert!(
            msg.ends_with(") (kernel: Attribute failed policy validation)"),
            "{msg}"
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
    }
}

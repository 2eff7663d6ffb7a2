//! Typed errors: the operation, the set (and entry), and what the kernel's
//! errno means for ipset.

use std::fmt;

use crate::{Entry, Member};

/// An ipset operation, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `IPSET_CMD_PROTOCOL`.
    #[doc(alias = "IPSET_CMD_PROTOCOL")]
    Protocol,
    /// `IPSET_CMD_TYPE`.
    #[doc(alias = "IPSET_CMD_TYPE")]
    Type,
    /// `IPSET_CMD_CREATE`.
    #[doc(alias = "IPSET_CMD_CREATE")]
    Create,
    /// `IPSET_CMD_DESTROY`.
    #[doc(alias = "IPSET_CMD_DESTROY")]
    Destroy,
    /// `IPSET_CMD_FLUSH`.
    #[doc(alias = "IPSET_CMD_FLUSH")]
    Flush,
    /// `IPSET_CMD_RENAME`.
    #[doc(alias = "IPSET_CMD_RENAME")]
    Rename,
    /// `IPSET_CMD_SWAP`.
    #[doc(alias = "IPSET_CMD_SWAP")]
    Swap,
    /// `IPSET_CMD_LIST`.
    #[doc(alias = "IPSET_CMD_LIST")]
    List,
    /// `IPSET_CMD_ADD`.
    #[doc(alias = "IPSET_CMD_ADD")]
    Add,
    /// `IPSET_CMD_DEL`.
    #[doc(alias = "IPSET_CMD_DEL")]
    Del,
    /// `IPSET_CMD_TEST`.
    #[doc(alias = "IPSET_CMD_TEST")]
    Test,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Protocol => "query protocol",
            Op::Type => "query type",
            Op::Create => "create",
            Op::Destroy => "destroy",
            Op::Flush => "flush",
            Op::Rename => "rename",
            Op::Swap => "swap",
            Op::List => "list",
            Op::Add => "add",
            Op::Del => "del",
            Op::Test => "test",
        })
    }
}

/// An errno from the ipset subsystem: a system errno or one of ipset's own
/// (`enum ipset_errno`, from 4096).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `ENOENT`: no set of that name.
    pub const NO_SUCH_SET: Errno = Errno(2);
    /// `EEXIST`: a set of that name exists with other parameters.
    pub const SET_EXISTS: Errno = Errno(17);
    /// `IPSET_ERR_PROTOCOL`.
    #[doc(alias = "IPSET_ERR_PROTOCOL")]
    pub const PROTOCOL: Errno = Errno(4097);
    /// `IPSET_ERR_FIND_TYPE`: the kernel has no such set type.
    #[doc(alias = "IPSET_ERR_FIND_TYPE")]
    pub const FIND_TYPE: Errno = Errno(4098);
    /// `IPSET_ERR_BUSY`: the set is referenced by a kernel component.
    #[doc(alias = "IPSET_ERR_BUSY")]
    pub const BUSY: Errno = Errno(4100);
    /// `IPSET_ERR_EXIST_SETNAME2`: the second set exists (rename) or not (swap).
    #[doc(alias = "IPSET_ERR_EXIST_SETNAME2")]
    pub const EXIST_SETNAME2: Errno = Errno(4101);
    /// `IPSET_ERR_TYPE_MISMATCH`: swap of sets of different types or families.
    #[doc(alias = "IPSET_ERR_TYPE_MISMATCH")]
    pub const TYPE_MISMATCH: Errno = Errno(4102);
    /// `IPSET_ERR_EXIST`: the element is (add) or is not (del, test) in the set.
    #[doc(alias = "IPSET_ERR_EXIST")]
    pub const EXIST: Errno = Errno(4103);
    /// `IPSET_ERR_REFERENCED`: the set is referenced and cannot be renamed.
    #[doc(alias = "IPSET_ERR_REFERENCED")]
    pub const REFERENCED: Errno = Errno(4108);
    /// `IPSET_ERR_TYPE_SPECIFIC`: first type-specific code (hash: set full;
    /// bitmap: out of range).
    #[doc(alias = "IPSET_ERR_HASH_FULL")]
    pub const TYPE_SPECIFIC: Errno = Errno(4352);

    /// What the errno means for ipset.
    pub fn meaning(self) -> String {
        let text = match self.0 {
            1 => "operation not permitted (needs CAP_NET_ADMIN)",
            2 => "no set of that name",
            16 => "set is being listed or swapped (busy)",
            17 => "a set of that name exists with different parameters",
            12 => "out of memory",
            4097 => "kernel rejected the message (ipset protocol error)",
            4098 => "set type not supported by this kernel (module missing?)",
            4099 => "the kernel's maximum number of sets is reached",
            4100 => "set is in use by a kernel component (iptables rule or list:set)",
            4101 => "the second set name exists (rename) or is missing (swap)",
            4102 => "the sets have different types or families",
            4103 => "element already in the set (add) or not in it (del, test)",
            4104 => "invalid CIDR prefix",
            4106 => "address family does not match the set",
            4108 => "set is referenced and cannot be renamed",
            4109 => "invalid IPv4 address for this set",
            4110 => "invalid IPv6 address for this set",
            4112 => "comment not supported by this set (created without comment)",
            4352 => "set is full (hash) or element out of range (bitmap)",
            4353 => "type-specific error 1 (hash: element invalid; bitmap: range too large)",
            4354 => "invalid protocol for a port",
            4355 => "missing protocol for a port",
            code => return std::io::Error::from_raw_os_error(code).to_string(),
        };
        text.to_owned()
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.meaning(), self.0)
    }
}

/// One member the kernel refused in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFailure {
    /// The member, in `ipset save` syntax.
    pub member: String,
    /// Why.
    pub errno: Errno,
}

/// An ipset operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The netfilter netlink socket could not be opened.
    #[error("ipset: cannot open a netfilter netlink socket: {0}")]
    Open(#[source] nfnetlink::Error),
    /// The kernel refused an operation on a set.
    #[error("ipset {op} {target}: {errno}{}", nfnetlink::KernelText(text.as_deref()))]
    Kernel {
        /// The operation.
        op: Op,
        /// The set(s) or type concerned.
        target: String,
        /// Why.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        text: Option<String>,
    },
    /// The socket failed or a reply could not be parsed.
    #[error("ipset {op} {target}: {source}")]
    Transport {
        /// The operation.
        op: Op,
        /// The set(s) concerned.
        target: String,
        /// The cause.
        #[source]
        source: nfnetlink::Error,
    },
    /// Some members of a batch were refused; the others were applied.
    #[error("ipset {op} set {set}: {} of {attempted} entries failed{}", failures.len(), first_failure(failures))]
    Members {
        /// `Add` or `Del`.
        op: Op,
        /// The set.
        set: String,
        /// How many members were sent.
        attempted: usize,
        /// The refused members (never empty).
        failures: Vec<MemberFailure>,
    },
    /// A member does not fit the set (type, family, port range, comment);
    /// nothing was sent.
    #[error("ipset {op} set {set}: entry {entry} does not fit `{spec}`")]
    Mismatch {
        /// The operation.
        op: Op,
        /// The set.
        set: String,
        /// The entry.
        entry: Entry,
        /// The set's spec.
        spec: String,
    },
}

fn first_failure(failures: &[MemberFailure]) -> String {
    failures
        .first()
        .map(|f| format!(", first {}: {}", f.member, f.errno))
        .unwrap_or_default()
}

impl Error {
    /// The kernel's errno, for a single refused operation.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn from_netlink(op: Op, target: impl Into<String>, e: nfnetlink::Error) -> Self {
        match e {
            nfnetlink::Error::Kernel { errno, text } => Error::Kernel {
                op,
                target: target.into(),
                errno: Errno(errno),
                text,
            },
            source => Error::Transport {
                op,
                target: target.into(),
                source,
            },
        }
    }

    pub(crate) fn members(
        op: Op,
        set: &str,
        sent: &[Member],
        results: &[Result<(), i32>],
    ) -> Result<(), Self> {
        let failures: Vec<MemberFailure> = sent
            .iter()
            .zip(results)
            .filter_map(|(m, r)| {
                r.err().map(|code| MemberFailure {
                    member: m.to_string(),
                    errno: Errno(code),
                })
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Members {
                op,
                set: set.to_owned(),
                attempted: sent.len(),
                failures,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_set_and_meaning() {
        let e = Error::Kernel {
            op: Op::Destroy,
            target: "set KUBE-CLUSTER-IP".into(),
            errno: Errno::BUSY,
            text: None,
        };
        assert_eq!(
            e.to_string(),
            "ipset destroy set KUBE-CLUSTER-IP: set is in use by a kernel component (iptables rule or list:set) (errno 4100)"
        );
        let e = Error::from_netlink(
            Op::Create,
            "set S",
            nfnetlink::Error::Kernel {
                errno: 22, // EINVAL
                text: Some("Attribute failed policy validation".into()),
            },
        );
        assert_eq!(e.errno(), Some(Errno(22)));
        assert!(
            e.to_string()
                .ends_with(" (kernel: Attribute failed policy validation)"),
            "{e}"
        );
        let sent = [
            Member::new("10.0.0.1".parse().unwrap()),
            Member::new("10.0.0.2".parse().unwrap()),
        ];
        let e = Error::members(Op::Add, "S", &sent, &[Ok(()), Err(4352)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ipset add set S: 1 of 2 entries failed, first 10.0.0.2: set is full (hash) or element out of range (bitmap) (errno 4352)"
        );
        assert!(Error::members(Op::Add, "S", &sent, &[Ok(()), Ok(())]).is_ok());
        assert!(Errno(13).meaning().contains("ermission"));
    }
}

//! The handle: list flows, delete those matching filters.

use crate::error::Error;
use crate::wire::{delete, dump};
use crate::{Family, Filter, Flow};

/// `ENOENT`: the entry is gone (expired, or deleted by someone else).
const ENOENT: i32 = 2;

/// A ctnetlink connection in the network namespace of the thread that
/// opened it.
///
/// ```no_run
/// use conntrack::{Conntrack, Family, Filter};
/// let mut ct = Conntrack::open()?;
/// // An endpoint of the UDP service 10.96.0.10 went away: forget its flows.
/// let gone = Filter::udp_nat("10.96.0.10".parse().unwrap(), "10.244.1.5".parse().unwrap());
/// let deleted = ct.delete_matching(Family::Ipv4, &[gone])?;
/// println!("deleted {deleted} stale flows");
/// # Ok::<(), conntrack::Error>(())
/// ```
#[derive(Debug)]
pub struct Conntrack {
    socket: nfnetlink::Socket,
}

impl Conntrack {
    /// Opens a netfilter netlink socket.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub fn open() -> Result<Self, Error> {
        Ok(Conntrack {
            socket: nfnetlink::Socket::open().map_err(Error::Open)?,
        })
    }

    /// Every entry of one family's table (`conntrack -L -f FAMILY`).
    ///
    /// # Errors
    /// When the dump fails or a reply cannot be parsed.
    #[doc(alias = "IPCTNL_MSG_CT_GET")]
    pub fn list(&mut self, family: Family) -> Result<Vec<Flow>, Error> {
        let list_error = |source| Error::List { family, source };
        let replies = self
            .socket
            .dump(dump::request(family))
            .map_err(list_error)?;
        replies
            .iter()
            .map(|r| dump::parse(&r.attrs).map_err(|e| list_error(e.into())))
            .collect()
    }

    /// Deletes these flows, many per system call, each by its original
    /// tuple and kernel id. Flows already gone are not errors. Returns how
    /// many were deleted.
    ///
    /// # Errors
    /// [`Error::Refused`] naming the flows the kernel refused to delete.
    #[doc(alias = "IPCTNL_MSG_CT_DELETE")]
    pub fn delete(&mut self, family: Family, flows: &[Flow]) -> Result<usize, Error> {
        let results = self
            .socket
            .batch(flows.iter().map(delete::request))
            .map_err(|source| Error::Delete { family, source })?;
        let failures: Vec<(Flow, i32)> = flows
            .iter()
            .zip(&results)
            .filter_map(|(f, r)| r.err().filter(|&e| e != ENOENT).map(|e| (*f, e)))
            .collect();
        if !failures.is_empty() {
            return Err(Error::Refused {
                attempted: flows.len(),
                failures,
            });
        }
        Ok(results.iter().filter(|r| r.is_ok()).count())
    }

    /// Lists the table once and deletes every flow matching any of
    /// `filters`, as kube-proxy's `CleanStaleEntries` does. Returns how many
    /// were deleted.
    ///
    /// # Errors
    /// As [`Conntrack::list`] and [`Conntrack::delete`].
    pub fn delete_matching(&mut self, family: Family, filters: &[Filter]) -> Result<usize, Error> {
        if filters.is_empty() {
            return Ok(0);
        }
        let doomed: Vec<Flow> = self
            .list(family)?
            .into_iter()
            .filter(|flow| filters.iter().any(|f| f.matches(flow)))
            .collect();
        self.delete(family, &doomed)
    }
}

//! UDP conntrack cleanup, as kube-proxy does it, in both modes: after the
//! IPVS table or the iptables rules changed, the UDP flows tracked to an
//! endpoint that is gone, or tracked while a Service had no endpoint, are
//! deleted, so that conntrack (and the NAT and filter rules that use it) stop
//! treating them as established. The decision is `reconcile::conntrack`'s;
//! each mode says which UDP destinations lead to which endpoints.

use conntrack::{Conntrack, Family, Flow};
use reconcile::conntrack::UdpEndpoints;

use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;

/// The kernel's conntrack table, as the cleanup uses it.
pub(crate) trait FlowTable: Sized {
    /// Opens the table.
    ///
    /// # Errors
    /// When it cannot be opened (no ctnetlink).
    fn open() -> Result<Self, conntrack::Error>;

    /// The flows of one family.
    ///
    /// # Errors
    /// When they cannot be listed.
    fn list(&mut self, family: Family) -> Result<Vec<Flow>, conntrack::Error>;

    /// Deletes `flows`; returns how many were deleted (a flow already gone is
    /// not an error).
    ///
    /// # Errors
    /// When a deletion fails otherwise.
    fn delete(&mut self, family: Family, flows: &[Flow]) -> Result<usize, conntrack::Error>;
}

impl FlowTable for Conntrack {
    fn open() -> Result<Self, conntrack::Error> {
        Conntrack::open()
    }

    fn list(&mut self, family: Family) -> Result<Vec<Flow>, conntrack::Error> {
        Conntrack::list(self, family)
    }

    fn delete(&mut self, family: Family, flows: &[Flow]) -> Result<usize, conntrack::Error> {
        Conntrack::delete(self, family, flows)
    }
}

/// The conntrack table, opened on first use.
#[derive(Debug)]
pub(crate) struct Flows<C = Conntrack> {
    client: Option<C>,
    /// The UDP virtual servers and endpoints of the last successful cleanup.
    last: Option<UdpEndpoints>,
}

impl<C> Default for Flows<C> {
    fn default() -> Self {
        Flows {
            client: None,
            last: None,
        }
    }
}

impl<C: FlowTable> Flows<C> {
    /// The cleanup over a table already open.
    #[cfg(any(test, feature = "fake"))]
    pub(crate) fn with(client: C) -> Self {
        Flows {
            client: Some(client),
            last: None,
        }
    }

    /// The table, once opened.
    pub(crate) fn client(&self) -> Option<&C> {
        self.client.as_ref()
    }

    /// Deletes stale UDP flows when the UDP destinations or their endpoints
    /// changed since the last cleanup, or on a `full` sync.
    ///
    /// # Errors
    /// When the table cannot be read or a flow cannot be deleted.
    pub(crate) fn sync(
        &mut self,
        endpoints: UdpEndpoints,
        full: bool,
        summary: &mut SyncSummary,
    ) -> Result<(), Error> {
        if endpoints.is_empty() || (!full && self.last.as_ref() == Some(&endpoints)) {
            self.last = Some(endpoints);
            return Ok(());
        }
        let client = match &mut self.client {
            Some(c) => c,
            None => self
                .client
                .insert(C::open().context("opening the conntrack netlink socket")?),
        };
        for family in [Family::Ipv4, Family::Ipv6] {
            if !endpoints.keys().any(|(ip, _)| Family::of(*ip) == family) {
                continue;
            }
            let flows = client.list(family).context("listing conntrack flows")?;
            let stale = reconcile::conntrack::stale(&endpoints, &flows);
            if stale.is_empty() {
                continue;
            }
            let deleted = client
                .delete(family, &stale)
                .context("deleting stale UDP conntrack flows")?;
            tracing::info!(?family, deleted, "stale UDP conntrack flows deleted");
            summary.applied("conntrack_entry", deleted);
        }
        self.last = Some(endpoints);
        Ok(())
    }
}

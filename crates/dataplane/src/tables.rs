//! The one way both proxy modes apply iptables tables, and the one rule for
//! what that means for the sync: a table is synced when its plan was applied
//! or it was already right; when any table cannot be read, planned or
//! restored (a missing `iptables-nft-save`, a rule the kernel refuses), the
//! whole iptables part is broken for this sync: logged and counted once,
//! with every cause, and health does not advance (as kube-proxy, which
//! returns before updating its healthz when `iptables-restore` fails, in
//! both modes).
//!
//! A periodic (`full`) sync plans against a fresh read of the table, so it
//! finds and repairs changes made by others; another plans against what the
//! writer last applied ([`Iptables::sync_from_applied`]). Whatever a restore
//! rewrites in a table whose desired content did not change since it was
//! last applied is drift.

use std::time::Instant;

use iptables::{DesiredTable, Family, Iptables, Plan};

use crate::error::Error;
use crate::summary::{Part, SyncSummary};

/// An iptables writer of one family, as the dataplane uses it.
pub(crate) trait Writer: Sized {
    /// The writer of `family`, with the backend of the host's tools.
    ///
    /// # Errors
    /// When the family has no working tools.
    fn detect(family: Family) -> Result<Self, iptables::Error>;

    /// The family it writes.
    fn family(&self) -> Family;

    /// Brings `table` to its desired content: planned against a fresh read of
    /// the table when `full`, else against what this writer last applied.
    /// Returns the plan applied, `None` when the table was already right.
    ///
    /// # Errors
    /// When the table cannot be read, planned or restored; a failed restore
    /// changes nothing in the table (`iptables-restore` commits a table at
    /// once or not at all).
    fn sync(&mut self, table: &DesiredTable, full: bool) -> Result<Option<Plan>, iptables::Error>;
}

impl Writer for Iptables {
    fn detect(family: Family) -> Result<Self, iptables::Error> {
        let writer = Iptables::detect(family)?;
        tracing::info!(family = family.command(), backend = ?writer.backend(), "iptables backend");
        Ok(writer)
    }

    fn family(&self) -> Family {
        Iptables::family(self)
    }

    fn sync(&mut self, table: &DesiredTable, full: bool) -> Result<Option<Plan>, iptables::Error> {
        if full {
            Iptables::sync(self, table)
        } else {
            self.sync_from_applied(table)
        }
    }
}

/// The iptables part of one sync: tables applied one by one, their failures
/// gathered and reported together by [`IptablesPart::finish`].
#[must_use = "finish() reports the part's failures"]
pub(crate) struct IptablesPart<'a> {
    summary: &'a mut SyncSummary,
    full: bool,
    failures: Vec<Error>,
    started: Instant,
}

impl<'a> IptablesPart<'a> {
    /// Starts the part of a sync (`full` for a periodic one) counted in `summary`.
    pub(crate) fn new(summary: &'a mut SyncSummary, full: bool) -> Self {
        IptablesPart {
            summary,
            full,
            failures: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Applies `table` with `writer`; `unchanged` says its desired content is
    /// what the last sync that applied it applied, so anything rewritten now
    /// is drift. Returns whether the table is synced.
    pub(crate) fn apply(
        &mut self,
        writer: &mut impl Writer,
        table: &DesiredTable,
        unchanged: bool,
    ) -> bool {
        let family = writer.family();
        match writer.sync(table, self.full) {
            Ok(Some(plan)) => {
                // Counts: the iptables mode rewrites tens of thousands of chains at once.
                tracing::info!(
                    family = family.command(),
                    table = %table.table,
                    rewritten = plan.rewritten.len(),
                    deleted = plan.deleted.len(),
                    jumps_inserted = plan.jumps_inserted.len(),
                    rules_deleted = plan.rules_deleted.len(),
                    "iptables-restore applied"
                );
                tracing::debug!(
                    family = family.command(),
                    table = %table.table,
                    rewritten = ?plan.rewritten,
                    deleted = ?plan.deleted,
                    "chains rewritten and deleted"
                );
                let counts = reconcile::drift::chains(&plan);
                if unchanged {
                    self.summary.drift(counts.iter().map(|(k, n)| (*k, *n)));
                }
                for (kind, n) in counts {
                    self.summary.applied(kind, n as usize);
                }
                true
            }
            Ok(None) => true,
            Err(e) => {
                if e.is_restore() {
                    self.summary.restore_failed.insert(family);
                }
                let op = format!("applying the {} {} table", family.command(), table.table);
                self.fail(Error::new(op, e));
                false
            }
        }
    }

    /// Records a table that could not even be attempted (its rules could
    /// not be built, its family has no writer).
    pub(crate) fn fail(&mut self, error: Error) {
        self.failures.push(error);
    }

    /// Ends the part: when any table failed, the part is broken, logged and
    /// counted once with every cause.
    pub(crate) fn finish(self) {
        let IptablesPart {
            summary,
            failures,
            started,
            ..
        } = self;
        if !failures.is_empty() {
            let causes: Vec<String> = failures.iter().map(ToString::to_string).collect();
            summary.broken(Part::Iptables, &causes.join("; "));
        }
        summary.timed("iptables", started);
    }
}

//! The kernel's conntrack table in memory: flows listed by family, deleted
//! by tuple (one already gone is no error, as with ctnetlink's `ENOENT`).

use std::sync::{Arc, Mutex};

use conntrack::{Family, Flow};

use crate::conntrack::FlowTable;

/// The flows, shared by the dataplane and the test.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// The flows tracked now.
    pub(crate) flows: Vec<Flow>,
    /// Whether listing fails (ctnetlink refusing).
    pub(crate) broken: bool,
}

/// A handle on the shared table.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeFlows(pub(crate) Arc<Mutex<Table>>);

impl FakeFlows {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FlowTable for FakeFlows {
    /// A fake is handed to the dataplane open; one it would open itself is a
    /// node without ctnetlink.
    fn open() -> Result<Self, conntrack::Error> {
        Err(conntrack::Error::Open(nfnetlink::Error::Io(
            std::io::ErrorKind::NotFound.into(),
        )))
    }

    fn list(&mut self, family: Family) -> Result<Vec<Flow>, conntrack::Error> {
        let table = self.table();
        if table.broken {
            return Err(conntrack::Error::List {
                family,
                source: nfnetlink::Error::Kernel {
                    errno: 1,
                    text: None,
                },
            });
        }
        Ok(table
            .flows
            .iter()
            .filter(|f| Family::of(f.orig.dst) == family)
            .copied()
            .collect())
    }

    fn delete(&mut self, _family: Family, flows: &[Flow]) -> Result<usize, conntrack::Error> {
        let mut table = self.table();
        let before = table.flows.len();
        table.flows.retain(|f| !flows.contains(f));
        Ok(before - table.flows.len())
    }
}

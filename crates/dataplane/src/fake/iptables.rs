//! The kernel's iptables tables in memory, written the way `iptables-restore
//! --noflush` writes them: the plan's text is executed line by line on a copy
//! of the table, which replaces the table only at `COMMIT` (a failing line
//! leaves the table as it was); `-X` of a chain still referenced fails, as
//! the kernel refuses it (`EBUSY`); `-A`, `-I` and `-D` on a missing chain or
//! rule fail.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt as _;
use std::sync::{Arc, Mutex, MutexGuard};

use iptables::{
    ChainName, ChainState, Counters, DesiredTable, Family, Learned, Plan, Rule, Table, TableState,
};

use crate::tables::Writer;

/// What a family's tools do wrong, injected by a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `iptables-save` cannot be started (the binary is missing).
    Read,
    /// `iptables-restore` refuses the input.
    Restore,
}

/// Every table of both families, shared by the writers and the test.
#[derive(Debug, Default)]
pub(crate) struct Netfilter {
    tables: BTreeMap<(Family, Table), TableState>,
    failures: BTreeMap<Family, Failure>,
    /// Restores run, by family and table.
    pub(crate) restores: BTreeMap<(Family, Table), usize>,
}

/// A handle on the shared tables.
pub(crate) type Kernel = Arc<Mutex<Netfilter>>;

/// Locks the tables (a test that panicked holding them poisons nothing else).
pub(crate) fn lock(kernel: &Kernel) -> MutexGuard<'_, Netfilter> {
    kernel.lock().unwrap_or_else(|e| e.into_inner())
}

fn builtin(table: Table) -> &'static [&'static str] {
    match table {
        Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &["PREROUTING", "OUTPUT"],
    }
}

fn name(s: &str) -> ChainName {
    s.parse().expect("a valid chain name")
}

impl Netfilter {
    /// Makes every later read or restore of `family` fail as `failure` says.
    pub(crate) fn fail(&mut self, family: Family, failure: Option<Failure>) {
        match failure {
            Some(f) => self.failures.insert(family, f),
            None => self.failures.remove(&family),
        };
    }

    /// The table as `iptables-save -t TABLE` would show it.
    pub(crate) fn table(&self, family: Family, table: Table) -> TableState {
        self.tables
            .get(&(family, table))
            .cloned()
            .unwrap_or_else(|| TableState {
                table,
                chains: builtin(table)
                    .iter()
                    .map(|c| ChainState {
                        name: name(c),
                        policy: Some("ACCEPT".into()),
                        counters: Counters::default(),
                        rules: Vec::new(),
                    })
                    .collect(),
            })
    }

    /// Changes a table behind the writer's back (someone running `iptables`).
    pub(crate) fn edit(
        &mut self,
        family: Family,
        table: Table,
        edit: impl FnOnce(&mut TableState),
    ) {
        let mut state = self.table(family, table);
        edit(&mut state);
        self.tables.insert((family, table), state);
    }

    /// How many rules of every table match on ipset `set` (`-m set --match-set SET`).
    pub(crate) fn references(&self, set: &str) -> u32 {
        let needle = format!("--match-set {set} ");
        let count = self
            .tables
            .values()
            .flat_map(|t| &t.chains)
            .flat_map(|c| &c.rules)
            .filter(|r| r.to_string().contains(&needle))
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    fn read(&self, family: Family, table: Table) -> Result<TableState, iptables::Error> {
        if self.failures.get(&family) == Some(&Failure::Read) {
            return Err(iptables::Error::Spawn {
                command: format!("{}-nft-save -t {table}", family.command()),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        Ok(self.table(family, table))
    }

    fn restore(&mut self, family: Family, plan: &Plan) -> Result<(), iptables::Error> {
        *self.restores.entry((family, plan.table)).or_insert(0) += 1;
        let refuse = |line: usize, stderr: String| iptables::Error::Restore {
            command: format!("{}-nft-restore --noflush --wait", family.command()),
            table: plan.table,
            status: std::process::ExitStatus::from_raw(1 << 8),
            line: Some(line),
            origin: plan.line(line).cloned().map(Box::new),
            stderr,
        };
        let mut state = self.table(family, plan.table);
        for (i, line) in plan.text().lines().enumerate() {
            let n = i + 1;
            if self.failures.get(&family) == Some(&Failure::Restore) && line.starts_with('-') {
                return Err(refuse(n, format!("line {n} failed")));
            }
            execute(&mut state, line)
                .map_err(|why| refuse(n, format!("line {n} failed: {why}")))?;
        }
        self.tables.insert((family, plan.table), state);
        Ok(())
    }
}

/// One line of restore input, on the table being built.
fn execute(state: &mut TableState, line: &str) -> Result<(), String> {
    let chain_index = |state: &TableState, chain: &str| {
        state
            .chains
            .iter()
            .position(|c| c.name.as_str() == chain)
            .ok_or_else(|| format!("no chain {chain}"))
    };
    let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
    match op {
        _ if line.starts_with('*') || line == "COMMIT" => {}
        _ if line.starts_with(':') => {
            let chain = line[1..].split(' ').next().unwrap_or_default();
            match chain_index(state, chain) {
                Ok(i) => state.chains[i].rules.clear(),
                Err(_) => state.chains.push(ChainState {
                    name: name(chain),
                    policy: None,
                    counters: Counters::default(),
                    rules: Vec::new(),
                }),
            }
        }
        "-A" | "-D" => {
            let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
            let rule = Rule::parse(spec).map_err(|e| e.to_string())?;
            let i = chain_index(state, chain)?;
            let rules = &mut state.chains[i].rules;
            if op == "-A" {
                rules.push(rule);
            } else {
                let at = rules
                    .iter()
                    .position(|r| *r == rule)
                    .ok_or("no such rule")?;
                rules.remove(at);
            }
        }
        "-I" => {
            let (chain, rest) = rest.split_once(' ').ok_or("no chain")?;
            let (at, spec) = rest.split_once(' ').ok_or("no position")?;
            let at: usize = at.parse().map_err(|_| "bad position")?;
            let rule = Rule::parse(spec).map_err(|e| e.to_string())?;
            let i = chain_index(state, chain)?;
            state.chains[i].rules.insert(at - 1, rule);
        }
        "-X" => {
            let i = chain_index(state, rest)?;
            let referenced = state
                .chains
                .iter()
                .any(|c| c.rules.iter().any(|r| r.target() == Some(rest)));
            if referenced || !state.chains[i].rules.is_empty() {
                return Err(format!("chain {rest} is in use"));
            }
            state.chains.remove(i);
        }
        _ => return Err(format!("unknown line {line:?}")),
    }
    Ok(())
}

/// A writer of one family over the shared tables, remembering what it
/// applied as the real writer does.
#[derive(Debug)]
pub(crate) struct FakeWriter {
    family: Family,
    kernel: Kernel,
    applied: HashMap<Table, TableState>,
}

impl FakeWriter {
    /// The writer of `family`.
    pub(crate) fn new(family: Family, kernel: &Kernel) -> Self {
        FakeWriter {
            family,
            kernel: Arc::clone(kernel),
            applied: HashMap::new(),
        }
    }
}

impl Writer for FakeWriter {
    /// A fake is handed to the dataplane; one it would find itself is a
    /// family without tools.
    fn detect(family: Family) -> Result<Self, iptables::Error> {
        Err(iptables::Error::Spawn {
            command: format!("{} --version", family.command()),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    fn family(&self) -> Family {
        self.family
    }

    fn sync(
        &mut self,
        desired: &DesiredTable,
        full: bool,
    ) -> Result<Option<Plan>, iptables::Error> {
        let mut kernel = lock(&self.kernel);
        let current = match self.applied.remove(&desired.table) {
            Some(state) if !full => state,
            _ => kernel.read(self.family, desired.table)?,
        };
        let Some(plan) = iptables::plan(&current, desired, &Learned::default())? else {
            self.applied.insert(desired.table, current);
            return Ok(None);
        };
        kernel.restore(self.family, &plan)?;
        let after = kernel.read(self.family, desired.table)?;
        self.applied.insert(desired.table, after);
        Ok(Some(plan))
    }
}

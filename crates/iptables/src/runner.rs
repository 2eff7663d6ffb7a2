//! Running the tools: `iptables-save -t TABLE` to read, one
//! `iptables-restore --noflush --wait` per table to write.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::applied::{after_apply, chains_to_read_back};
use crate::learned::Learned;
use crate::{
    Backend, ChainName, ChainState, DesiredTable, Error, Family, Ownership, Plan, Rule, Ruleset,
    Table, TableState, Tools,
};

/// The iptables writer for one address family: reads our chains, and applies
/// desired tables with one `iptables-restore --noflush --wait` each.
///
/// It remembers how the kernel printed the rules it wrote (see
/// [`Learned`]), so keep one `Iptables` per family for the daemon's lifetime.
///
/// ```no_run
/// use iptables::{Chain, DesiredTable, Family, Iptables, Ownership, Rule, Table};
/// let mut ipt = Iptables::detect(Family::V4)?;
/// let mut nat = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
/// nat.chains.push(Chain {
///     name: "KUBE-MARK-MASQ".parse()?,
///     rules: vec![Rule::parse("-j MARK --or-mark 0x4000")?],
/// });
/// let first = ipt.sync(&nat)?;
/// assert!(first.is_some());
/// // The kernel printed `--set-xmark 0x4000/0x4000`; the writer learned it.
/// assert!(ipt.sync(&nat)?.is_none());
/// # Ok::<(), iptables::Error>(())
/// ```
#[derive(Debug)]
pub struct Iptables {
    family: Family,
    backend: Backend,
    tools: Tools,
    learned: HashMap<Table, Learned>,
    /// Per table, the state after the last successful read or apply.
    applied: HashMap<Table, TableState>,
}

impl Iptables {
    /// A writer using `backend` (forced, for example from a flag).
    pub fn new(family: Family, backend: Backend) -> Self {
        Iptables {
            family,
            backend,
            tools: Tools::new(family, backend),
            learned: HashMap::new(),
            applied: HashMap::new(),
        }
    }

    /// A writer using the backend of the host's `iptables`/`ip6tables`.
    ///
    /// # Errors
    /// See [`Backend::detect`].
    pub fn detect(family: Family) -> Result<Self, Error> {
        Ok(Iptables::new(family, Backend::detect(family)?))
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Reads one table with `iptables-save -t TABLE`.
    ///
    /// # Errors
    /// [`Error::Spawn`] or [`Error::Command`] when the tool fails,
    /// [`Error::Parse`] when its output does not parse.
    pub fn read(&self, table: Table) -> Result<TableState, Error> {
        let out = run(&self.tools.save, &["-t", table.as_str()])?;
        let mut ruleset = Ruleset::parse(&out)?;
        Ok(ruleset
            .tables
            .remove(&table)
            .unwrap_or_else(|| TableState::empty(table)))
    }

    /// Reads the rules of a few chains with `iptables -t TABLE -S CHAIN`,
    /// which, unlike `iptables-save`, does not cost time in proportion to
    /// the whole table on the nf_tables backend.
    ///
    /// # Errors
    /// [`Error::Spawn`] or [`Error::Command`] when the tool fails (for
    /// example because a chain does not exist), [`Error::Parse`] when its
    /// output does not parse.
    pub fn read_chains(
        &self,
        table: Table,
        chains: &[&ChainName],
    ) -> Result<HashMap<ChainName, Vec<Rule>>, Error> {
        let mut found = HashMap::with_capacity(chains.len());
        for &chain in chains {
            let out = run(
                &self.tools.cli,
                &["-t", table.as_str(), "-S", chain.as_str(), "--wait"],
            )?;
            let prefix = format!("-A {chain} ");
            let rules = out
                .lines()
                .filter(|l| l.starts_with("-A "))
                .enumerate()
                .map(|(i, line)| {
                    let spec = line.strip_prefix(&prefix).unwrap_or_default();
                    Rule::parse(spec).map_err(|e| Error::Parse {
                        line: i + 1,
                        text: line.to_owned(),
                        what: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?;
            found.insert(chain.clone(), rules);
        }
        Ok(found)
    }

    /// The chains of `table` that `ownership` claims and that exist now, for
    /// the reconciler's drift metric.
    ///
    /// # Errors
    /// As [`Iptables::read`].
    pub fn owned_chains(
        &self,
        table: Table,
        ownership: &Ownership,
    ) -> Result<Vec<ChainName>, Error> {
        Ok(self
            .read(table)?
            .chains
            .into_iter()
            .filter(|c| !c.is_builtin() && ownership.owns(c.name.as_str()))
            .map(|c| c.name)
            .collect())
    }

    /// The restore input that turns `current` into `desired` (see
    /// [`crate::plan()`]), using what this writer learned from earlier applies.
    ///
    /// # Errors
    /// [`Error::InvalidDesired`].
    pub fn plan(
        &self,
        current: &TableState,
        desired: &DesiredTable,
    ) -> Result<Option<Plan>, Error> {
        let learned = self
            .learned
            .get(&desired.table)
            .cloned()
            .unwrap_or_default();
        crate::plan(current, desired, &learned)
    }

    /// Runs one `iptables-restore --noflush --wait` ([`RESTORE_ARGS`]) with the plan's text.
    ///
    /// # Errors
    /// [`Error::Spawn`], or [`Error::Restore`] naming the failing line and
    /// what it was for.
    pub fn restore(&self, plan: &Plan) -> Result<(), Error> {
        let command = format!("{} {RESTORE_ARGS}", self.tools.restore);
        let spawn_err = |source| Error::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = Command::new(&self.tools.restore)
            .args(RESTORE_ARGS.split(' '))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // A restore that dies early closes its stdin; its stderr says why.
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(plan.text().as_bytes()));
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            if let Some(Err(e)) = written {
                return Err(spawn_err(e));
            }
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let line = failed_line(&stderr);
        Err(Error::Restore {
            command,
            table: plan.table,
            status: out.status,
            line,
            origin: line.and_then(|n| plan.line(n)).cloned().map(Box::new),
            stderr,
        })
    }

    /// Brings `desired.table` to the desired state: reads it, computes the
    /// plan, and when something differs runs one restore and reads back the
    /// chains it wrote, to learn how the kernel prints them. Returns the plan
    /// applied, or `None` when the table was already right (no restore ran).
    /// Drift (a chain edited or deleted by hand) is found and repaired.
    ///
    /// # Errors
    /// Any of [`Iptables::read`], [`Iptables::plan`], [`Iptables::restore`].
    pub fn sync(&mut self, desired: &DesiredTable) -> Result<Option<Plan>, Error> {
        let current = self.read(desired.table)?;
        self.apply_against(current, desired)
    }

    /// Like [`Iptables::sync`], but plans against the state this writer
    /// last read or applied instead of reading the table, which on
    /// nf_tables costs seconds at 10,000 chains. Use it for event-driven
    /// syncs and [`Iptables::sync`] on the periodic full sync: changes made
    /// by others meanwhile are not seen (a restore that fails because of them
    /// forgets the remembered state, so the next call reads the table).
    ///
    /// # Errors
    /// As [`Iptables::sync`].
    pub fn sync_from_applied(&mut self, desired: &DesiredTable) -> Result<Option<Plan>, Error> {
        let current = match self.applied.remove(&desired.table) {
            Some(state) => state,
            None => self.read(desired.table)?,
        };
        self.apply_against(current, desired)
    }

    fn apply_against(
        &mut self,
        current: TableState,
        desired: &DesiredTable,
    ) -> Result<Option<Plan>, Error> {
        self.applied.remove(&desired.table);
        let Some(plan) = self.plan(&current, desired)? else {
            self.applied.insert(desired.table, current);
            return Ok(None);
        };
        self.restore(&plan)?;
        let after = self.read_back(&current, &plan)?;
        let saved = after.by_name();
        self.learn(desired, &plan, &saved);
        self.applied.insert(desired.table, after);
        Ok(Some(plan))
    }

    /// The table after `plan` was applied to `before`: the chains the plan
    /// wrote read back one `iptables -S CHAIN` each when they are few, the
    /// whole table with `iptables-save` otherwise.
    fn read_back(&self, before: &TableState, plan: &Plan) -> Result<TableState, Error> {
        let chains = chains_to_read_back(plan);
        if chains.len() <= READ_BACK_CHAIN_BY_CHAIN {
            let rules = self.read_chains(plan.table, &chains)?;
            return Ok(after_apply(before, plan, rules));
        }
        self.read(plan.table)
    }

    fn learn(&mut self, desired: &DesiredTable, plan: &Plan, saved: &HashMap<&str, &ChainState>) {
        let learned = self.learned.entry(desired.table).or_default();
        let wanted: HashMap<&ChainName, &crate::Chain> =
            desired.chains.iter().map(|c| (&c.name, c)).collect();
        for name in &plan.rewritten {
            if let (Some(chain), Some(now)) = (wanted.get(name), saved.get(name.as_str())) {
                learned.learn_chain(name, &chain.rules, &now.rules);
            }
        }
        // Inserted jumps sit at the top of their chain, in desired order.
        let mut position: HashMap<&ChainName, usize> = HashMap::new();
        for jump in &plan.jumps_inserted {
            let at = position.entry(&jump.from).or_default();
            if let Some(now) = saved.get(jump.from.as_str()).and_then(|c| c.rules.get(*at)) {
                learned.learn_jump(&jump.from, &jump.rule, now);
            }
            *at += 1;
        }
        learned.retain_chains(|name| wanted.contains_key(name));
    }
}

/// Up to this many chains are read back one `iptables -S CHAIN` each after
/// an apply; more take one `iptables-save` (a one-chain listing costs
/// milliseconds, a save of 10,000 chains seconds on nf_tables).
const READ_BACK_CHAIN_BY_CHAIN: usize = 16;

/// The arguments of every restore: keep the chains we do not write, wait for the xtables lock.
pub(crate) const RESTORE_ARGS: &str = "--noflush --wait";

/// Runs a tool that must succeed and returns its standard output.
fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The input line `iptables-restore` blamed: `Error occurred at line: N`
/// (parse and extension errors), `line N failed` (legacy commit, nft) or
/// `line N: ...` (nft commit).
fn failed_line(stderr: &str) -> Option<usize> {
    let number = |s: &str| -> Option<usize> {
        let digits: String = s
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    stderr.match_indices("line").find_map(|(i, _)| {
        let rest = &stderr[i + 4..];
        number(rest.strip_prefix(':').unwrap_or(rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_failed_line_in_real_messages() {
        for (stderr, line) in [
            (
                "iptables-nft-restore v1.8.9 (nf_tables): Couldn't load match `nosuchmatch':No such file or directory\n\nError occurred at line: 4\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.",
                Some(4),
            ),
            (
                "iptables-nft-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or resource busy): chain KUBE-FORWARD\n",
                Some(2),
            ),
            ("iptables-restore: line 2 failed", Some(2)),
            (
                "iptables-nft-restore: line 7 failed: No chain/target/match by that name.",
                Some(7),
            ),
            ("Another app is currently holding the xtables lock.", None),
        ] {
            assert_eq!(failed_line(stderr), line, "{stderr}");
        }
    }
}

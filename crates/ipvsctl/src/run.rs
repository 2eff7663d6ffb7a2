//! Runs a subcommand against the kernel: the only module that talks to
//! IPVS or reads /proc.

use std::io::{IsTerminal, Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipvs::{Change, Client, ServiceRules, ServiceWithDestinations};

use crate::cli::{
    Command, ConnsArgs, ListArgs, NamesArgs, NamingArgs, RestoreArgs, TimeoutsArgs, ViewArgs,
    WatchArgs,
};
use crate::conns::{self, ConnFilter};
use crate::filter::Filter;
use crate::format::list::{self, ListFormat, View};
use crate::format::save;
use crate::modules::KernelModules;
use crate::names::Names;
use crate::naming::{self, Naming};
use crate::progress::Progress;
use crate::restore::{self, Step};
use crate::rollback::{self, Journal, Undo};
use crate::{json, sort, watch};

/// A failure that is already explained: the message is all there is to say.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Failed(pub(crate) String);

/// Runs one subcommand, writing its output to `out`.
pub(crate) fn execute(command: Command, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::List(args) => list(&args, out),
        Command::Conns(args) => connections(&args, out),
        Command::Save(args) => {
            let table = sort::ipvsadm_order(rules(&mut connect()?)?);
            let naming = naming(args.naming, || naming::table_addrs(&table));
            Ok(out.write_all(save::render(&table, &naming).as_bytes())?)
        }
        Command::Restore(args) => restore(args, out),
        Command::Info(args) => {
            let mut ipvs = connect()?;
            let info = ipvs.info()?;
            let table = ipvs.list()?;
            let doc = json::InfoDoc {
                version: info.version.to_string(),
                connection_table_size: info.connection_table_size,
                services: table.len(),
                real_servers: table.iter().map(|s| s.destinations.len()).sum(),
            };
            let text = if args.json {
                json::to_line(&doc)
            } else {
                format!(
                    "{}Services: {}\nReal servers: {}\n",
                    list::version_line(&info),
                    doc.services,
                    doc.real_servers
                )
            };
            Ok(out.write_all(text.as_bytes())?)
        }
        Command::Timeouts(args) => timeouts(&args, out),
        Command::Zero(vs) => Ok(connect()?.zero(vs.key()?.as_ref())?),
        Command::Flush => Ok(connect()?.flush()?),
        Command::AddService(a) => apply_one(Change::AddService(a.to_service("add-service")?)),
        Command::EditService(a) => apply_one(Change::EditService(a.to_service("edit-service")?)),
        Command::DeleteService(vs) => {
            apply_one(Change::DeleteService(vs.required_key("delete-service")?))
        }
        Command::AddServer(a) => {
            let (key, d) = a.to_destination("add-server")?;
            apply_one(Change::AddDestination(key, d))
        }
        Command::EditServer(a) => {
            let (key, d) = a.to_destination("edit-server")?;
            apply_one(Change::EditDestination(key, d))
        }
        Command::DeleteServer(k) => {
            let (service, addr, port) = k.resolve("delete-server", None)?;
            apply_one(Change::DeleteDestination {
                service,
                addr,
                port,
            })
        }
        Command::Watch(args) => watch(&args, out),
    }
}

/// Opens the IPVS client of this network namespace.
fn connect() -> Result<Client> {
    Ok(Client::new()?)
}

/// The whole table, with progress on a terminal when it is large.
fn list_table(ipvs: &mut Client) -> Result<Vec<ServiceWithDestinations>> {
    reading(|progress| ipvs.list_with_progress(progress))
}

/// The table as `ipvsadm -S` saves it, with progress on a terminal when it
/// is large.
fn rules(ipvs: &mut Client) -> Result<Vec<ServiceRules>> {
    reading(|progress| ipvs.rules_with_progress(progress))
}

/// What `read` reads, showing its progress (services done, total).
fn reading<T>(
    read: impl FnOnce(&mut dyn FnMut(usize, usize)) -> Result<T, ipvs::Error>,
) -> Result<T> {
    let mut progress = Progress::stderr("listing", 0);
    let read = read(&mut |done, total| progress.update(done, total));
    progress.finish();
    Ok(read?)
}

/// How many changes of a restore are sent in one pipelined batch: large
/// enough to keep the kernel busy, small enough to show progress.
const CHUNK: usize = 1_000;

/// A restore's changes, sent in pipelined chunks with progress (the
/// changes done over all of them).
struct Applier {
    progress: Progress,
    done: usize,
    total: usize,
}

impl Applier {
    fn new(steps: &[Step]) -> Self {
        let total = steps
            .iter()
            .map(|s| match s {
                Step::Changes(c) => c.len(),
                _ => 0,
            })
            .sum();
        Applier {
            progress: Progress::stderr("restore", total),
            done: 0,
            total,
        }
    }

    /// Applies `changes` (the kernel's answer to each, in order).
    fn apply(
        &mut self,
        ipvs: &mut Client,
        changes: &[(usize, Change)],
    ) -> Vec<Result<(), ipvs::Error>> {
        let mut results = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(CHUNK) {
            let plain: Vec<Change> = chunk.iter().map(|(_, c)| c.clone()).collect();
            results.extend(ipvs.apply(&plain));
            self.done += chunk.len();
            self.progress.update(self.done, self.total);
        }
        results
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.progress.finish();
    }
}

fn apply_one(change: Change) -> Result<()> {
    let mut results = connect()?.apply(std::slice::from_ref(&change));
    results.pop().unwrap_or(Ok(()))?;
    Ok(())
}

/// ipvsadm's precedence when several views are asked for.
fn view(v: &ViewArgs) -> ListFormat {
    let view = [
        (v.stats, View::Stats),
        (v.rate, View::Rate),
        (v.thresholds, View::Thresholds),
        (v.persistent_conn, View::PersistentConn),
        (v.tun_info, View::TunInfo),
    ]
    .into_iter()
    .find_map(|(on, view)| on.then_some(view))
    .unwrap_or_default();
    ListFormat {
        view,
        exact: v.exact,
    }
}

/// The services passing `filter`, in ipvsadm's order unless `nosort`.
fn select(
    table: Vec<ServiceWithDestinations>,
    filter: &Filter,
    nosort: bool,
) -> Vec<ServiceWithDestinations> {
    let table: Vec<_> = table.into_iter().filter(|s| filter.matches(s)).collect();
    if nosort {
        table
    } else {
        sort::ipvsadm_order(table)
    }
}

/// Numbers, or the system's names for the addresses `addrs` gives (looked
/// up only when `--resolve` asks for names).
fn naming(args: NamingArgs, addrs: impl FnOnce() -> Vec<IpAddr>) -> Naming {
    if args.resolve {
        Naming::system(addrs())
    } else {
        Naming::Numeric
    }
}

/// Reads the names `--names` asks for, before anything is printed: the user
/// asked for them, so a source that cannot be read fails the command.
fn names(args: &NamesArgs) -> Result<Option<Names>> {
    let Some(source) = args.source()? else {
        return Ok(None);
    };
    Ok(Some(
        crate::names::load(&source).map_err(|e| Failed(e.to_string()))?,
    ))
}

fn list(args: &ListArgs, out: &mut dyn Write) -> Result<()> {
    let filter = Filter::new(&args.filters)?;
    let names = names(&args.names)?;
    let mut ipvs = connect()?;
    let table = select(list_table(&mut ipvs)?, &filter, args.view.nosort);
    // Like `ipvsadm -L -t ...`: one service, no version line, and an
    // error when it does not exist.
    if filter.service.is_some() && table.is_empty() {
        bail!(Failed("No such service".into()));
    }
    let info = ipvs.info()?;
    let text = if args.json.json {
        json::to_line(&json::Listing::new(&info, &table, names.as_ref()))
    } else {
        let info = filter.service.is_none().then_some(&info);
        let naming = naming(args.view.naming, || naming::table_addrs(&table));
        list::render(info, &table, view(&args.view), names.as_ref(), &naming)
    };
    Ok(out.write_all(text.as_bytes())?)
}

fn connections(args: &ConnsArgs, out: &mut dyn Write) -> Result<()> {
    let filter = ConnFilter::new(
        args.service.key()?,
        args.real.as_deref(),
        args.client.as_deref(),
        args.state.clone(),
    )?;
    let names = names(&args.names)?;
    let default = if args.sync {
        conns::PROC_CONN_SYNC
    } else {
        conns::PROC_CONN
    };
    let path = args.proc_file.as_deref().unwrap_or(default.as_ref());
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failed(format!(
            "cannot read {}: {e} (is the ip_vs module loaded?)",
            path.display()
        ))
    })?;
    let all = conns::parse(&path.display().to_string(), &text, args.sync)?;
    let selected: Vec<_> = all.into_iter().filter(|c| filter.matches(c)).collect();
    let text = if args.json.json {
        json::to_line(&json::ConnsDoc::new(&selected, names.as_ref()))
    } else {
        let naming = naming(args.naming, || {
            selected
                .iter()
                .flat_map(|c| [c.client.ip(), c.virtual_addr.ip(), c.real.ip()])
                .collect()
        });
        conns::render(&selected, args.persistent_conn, names.as_ref(), &naming)
    };
    Ok(out.write_all(text.as_bytes())?)
}

fn timeouts(args: &TimeoutsArgs, out: &mut dyn Write) -> Result<()> {
    let mut ipvs = connect()?;
    if let Some(values) = &args.set {
        return Ok(ipvs.set_timeouts(&restore::timeouts(values)?)?);
    }
    let t = ipvs.timeouts()?;
    let text = if args.json.json {
        json::to_line(&json::TimeoutsDoc::from(t))
    } else {
        format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            t.tcp, t.tcp_fin, t.udp
        )
    };
    Ok(out.write_all(text.as_bytes())?)
}

fn restore(args: RestoreArgs, out: &mut dyn Write) -> Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading the rules from standard input")?;
    let mut steps = restore::parse(&input, &KernelModules::system())
        .map_err(|e| Failed(format!("restore: {e}; nothing applied")))?;
    if args.flush {
        steps.insert(0, Step::Flush(None));
    }
    if args.dry_run {
        for step in &steps {
            out.write_all(restore::describe(step).as_bytes())?;
        }
        return Ok(());
    }
    let mut ipvs = connect()?;
    if args.no_rollback {
        apply_all(&mut ipvs, steps)
    } else {
        apply_or_undo(&mut ipvs, steps)
    }
}

/// The first line the kernel would refuse because of what the table holds
/// (a missing service or real server, a duplicate), found by following the
/// steps on `journal`, the table read before them; the error is the one
/// the kernel's refusal gives.
fn predicted_refusal(mut journal: Journal, steps: &[Step]) -> Option<String> {
    for step in steps {
        match step {
            Step::Flush(_) => journal.flushed(),
            Step::Zero(line, Some(key)) if !journal.has(key) => {
                let op = ipvs::Operation::Zero;
                return Some(format!(
                    "line {line}: {}",
                    refusal(op, key.to_string(), libc::ESRCH)
                ));
            }
            Step::Zero(..) | Step::SetTimeouts(..) => {}
            Step::Changes(changes) => {
                for (line, change) in changes {
                    if let Some(errno) = journal.refusal(change) {
                        let e = refusal(change.operation(), change.object().0, errno);
                        return Some(format!("line {line}: {e}"));
                    }
                    journal.applied(change).ok()?;
                }
            }
        }
    }
    None
}

/// The error the kernel's refusal of `op` on `object` with `errno` gives.
fn refusal(op: ipvs::Operation, object: String, errno: i32) -> ipvs::Error {
    ipvs::Error::Kernel {
        op,
        object: ipvs::Object(object),
        kind: ipvs::ErrorKind::from_errno(op, errno),
        errno,
        text: None,
    }
}

/// Where a step comes from, for messages.
fn place(line: Option<usize>) -> String {
    line.map_or_else(|| "--flush".to_owned(), |l| format!("line {l}"))
}

/// ipvsadm's restore: every line is applied, whatever the kernel refuses;
/// the refused lines are reported at the end.
fn apply_all(ipvs: &mut Client, steps: Vec<Step>) -> Result<()> {
    let mut applier = Applier::new(&steps);
    let mut failures = Vec::new();
    for step in steps {
        match step {
            Step::Flush(line) => {
                if let Err(e) = ipvs.flush() {
                    failures.push(format!("{}: {e}", place(line)));
                }
            }
            Step::SetTimeouts(line, t) => {
                if let Err(e) = ipvs.set_timeouts(&t) {
                    failures.push(format!("line {line}: {e}"));
                }
            }
            Step::Zero(line, k) => {
                if let Err(e) = ipvs.zero(k.as_ref()) {
                    failures.push(format!("line {line}: {e}"));
                }
            }
            Step::Changes(changes) => {
                for ((line, _), result) in changes.iter().zip(applier.apply(ipvs, &changes)) {
                    if let Err(e) = result {
                        failures.push(format!("line {line}: {e}"));
                    }
                }
            }
        }
    }
    drop(applier);
    match failures.as_slice() {
        [] => Ok(()),
        _ => bail!(Failed(format!(
            "restore: {} change(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ))),
    }
}

/// All or nothing: the steps are applied in order until the kernel refuses
/// one; then every change already applied from the input is undone, newest
/// first, and the refusal is reported (see [`crate::rollback`]).
fn apply_or_undo(ipvs: &mut Client, steps: Vec<Step>) -> Result<()> {
    // The table is read only when undoing needs it; then it also shows
    // which lines the kernel would refuse, before anything is applied.
    let mut journal = Journal::default();
    if rollback::needs_table(&steps) {
        journal = Journal::new(list_table(ipvs)?);
        if let Some(refused) = predicted_refusal(journal.clone(), &steps) {
            bail!(Failed(format!("restore: {refused}; nothing applied")));
        }
    }
    let mut applier = Applier::new(&steps);
    let mut refused = Vec::new();
    let mut untracked = Vec::new();
    for step in steps {
        match step {
            Step::Flush(line) => match ipvs.flush() {
                Ok(()) => journal.flushed(),
                Err(e) => refused.push(format!("{}: {e}", place(line))),
            },
            Step::SetTimeouts(line, t) => {
                let set = ipvs.timeouts().and_then(|before| {
                    ipvs.set_timeouts(&t)?;
                    Ok(before)
                });
                match set {
                    Ok(before) => journal.timeouts_set(before),
                    Err(e) => refused.push(format!("line {line}: {e}")),
                }
            }
            Step::Zero(line, k) => {
                if let Err(e) = ipvs.zero(k.as_ref()) {
                    refused.push(format!("line {line}: {e}"));
                }
            }
            Step::Changes(changes) => {
                for ((line, change), result) in changes.iter().zip(applier.apply(ipvs, &changes)) {
                    match result {
                        Ok(()) => {
                            if let Err(e) = journal.applied(change) {
                                untracked.push(format!("line {line}: {e}"));
                            }
                        }
                        Err(e) => refused.push(format!("line {line}: {e}")),
                    }
                }
            }
        }
        if !refused.is_empty() {
            break;
        }
    }
    drop(applier);
    if refused.is_empty() {
        return Ok(());
    }
    let applied = journal.len();
    let mut failed_undo = untracked;
    for undo in journal.into_undo() {
        match undo {
            Undo::Changes(changes) => {
                for (change, result) in changes.iter().zip(ipvs.apply(&changes)) {
                    if let Err(e) = result {
                        failed_undo.push(format!("undoing with \"{change}\": {e}"));
                    }
                }
            }
            Undo::Timeouts(t) => {
                if let Err(e) = ipvs.set_timeouts(&t) {
                    failed_undo.push(format!("setting the timeouts back: {e}"));
                }
            }
        }
    }
    let outcome = if failed_undo.is_empty() {
        format!("undid the {applied} change(s) applied from this input: the table is as before")
    } else {
        format!(
            "undoing the {applied} change(s) applied from this input failed, the table is NOT as \
             before:\n  {}",
            failed_undo.join("\n  ")
        )
    };
    bail!(Failed(format!(
        "restore: {}\nrestore: {outcome}",
        refused.join("\n  ")
    )))
}

fn watch(args: &WatchArgs, out: &mut dyn Write) -> Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!(crate::spec::UsageError(
            "--interval must be a positive number of seconds".into()
        ));
    }
    let filter = Filter::new(&args.filters)?;
    let names = names(&args.names)?;
    let terminal = std::io::stdout().is_terminal();
    let mut ipvs = connect()?;
    let info = ipvs.info()?;
    let mut prev: Option<(Instant, watch::Sample)> = None;
    let mut n = 0u64;
    loop {
        let table = select(ipvs.list()?, &filter, false);
        let now = Instant::now();
        let text = if args.json {
            json::to_line(&json::Listing::new(&info, &table, names.as_ref()))
        } else {
            let sample = watch::Sample::new(&table);
            let elapsed = prev
                .as_ref()
                .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64());
            let body = watch::frame(
                prev.as_ref().map(|(_, s)| s),
                &sample,
                elapsed,
                terminal,
                names.as_ref(),
            );
            prev = Some((now, sample));
            let clear = if terminal { watch::CLEAR } else { "" };
            format!(
                "{clear}{}Every {}s, refresh {}\n{body}\n",
                list::version_line(&info),
                args.interval,
                n + 1
            )
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

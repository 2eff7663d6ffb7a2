//! The IPVS table: kernel modules, sysctls and timeouts at start, then each
//! sync the virtual and real servers, diffed against what the kernel has and
//! applied as one pipelined batch, with graceful termination.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use desired::DesiredState;
use hostnet::modules::{Modules, ipvs_modules};
use hostnet::sysctl::Sysctls;
use reconcile::ipvs::Planner;
use reconcile::survey::Ticks;
use reconcile::{Draining, Ownership, Scope, Survey, Wanted};

use super::Owner;
use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;

/// Operations sent to the kernel in one pipelined batch, at most.
const APPLY_BATCH: usize = 8192;

/// Node settings the IPVS dataplane needs from the configuration.
#[derive(Debug, Clone)]
pub struct IpvsOptions {
    /// Which virtual servers are ours.
    pub owner: Owner,
    /// `ipvs.strictARP`.
    pub strict_arp: bool,
    /// `ipvs.tcpTimeout`, `tcpFinTimeout`, `udpTimeout` (zero: leave the kernel's).
    pub timeouts: [Duration; 3],
    /// Schedulers whose modules must be loaded.
    pub schedulers: Vec<String>,
    /// How long a leaving TCP real server may drain before it is deleted with
    /// connections left, unless its Service sets its own bound.
    pub drain_timeout: Duration,
}

/// The kernel's IPVS table, as the dataplane uses it.
pub(crate) trait IpvsKernel {
    /// Applies `changes` in order; one result each.
    fn apply(&mut self, changes: &[ipvs::Change]) -> Vec<Result<(), ipvs::Error>>;

    /// Every virtual server with its real servers.
    ///
    /// # Errors
    /// When the table cannot be read.
    fn list(&mut self) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error>;

    /// Every virtual server with its counters, without its real servers.
    ///
    /// # Errors
    /// When the table cannot be read.
    fn services(&mut self) -> Result<Vec<ipvs::ServiceEntry>, ipvs::Error>;

    /// The virtual servers with these keys (those missing left out).
    ///
    /// # Errors
    /// When the table cannot be read.
    fn list_only(
        &mut self,
        keys: &BTreeSet<ipvs::ServiceKey>,
    ) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error>;

    /// The cheap overview of every virtual server (`/proc/net/ip_vs`).
    ///
    /// # Errors
    /// When it cannot be read.
    fn overview(&mut self, each: &mut dyn FnMut(&ipvs::OverviewService))
    -> Result<(), ipvs::Error>;

    /// Makes sure the module of scheduler `name` (`rr`, `wrr`...) is loaded.
    ///
    /// # Errors
    /// When it is missing.
    fn load_scheduler(&mut self, name: &str) -> Result<(), hostnet::ModuleError>;
}

impl IpvsKernel for ipvs::Client {
    fn apply(&mut self, changes: &[ipvs::Change]) -> Vec<Result<(), ipvs::Error>> {
        ipvs::Client::apply(self, changes)
    }

    fn list(&mut self) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error> {
        ipvs::Client::list(self)
    }

    fn services(&mut self) -> Result<Vec<ipvs::ServiceEntry>, ipvs::Error> {
        ipvs::Client::services(self)
    }

    fn list_only(
        &mut self,
        keys: &BTreeSet<ipvs::ServiceKey>,
    ) -> Result<Vec<ipvs::ServiceWithDestinations>, ipvs::Error> {
        ipvs::Client::list_only(self, keys)
    }

    fn overview(
        &mut self,
        each: &mut dyn FnMut(&ipvs::OverviewService),
    ) -> Result<(), ipvs::Error> {
        ipvs::Client::overview(self, each)
    }

    fn load_scheduler(&mut self, name: &str) -> Result<(), hostnet::ModuleError> {
        Modules::host().ensure(&[format!("ip_vs_{name}")]).map(drop)
    }
}

/// The kind of object an IPVS change is about, for metrics.
fn kind(change: &ipvs::Change) -> &'static str {
    match change {
        ipvs::Change::AddService(_)
        | ipvs::Change::EditService(_)
        | ipvs::Change::DeleteService(_) => "virtual_server",
        _ => "real_server",
    }
}

/// The IPVS table of this node.
#[derive(Debug)]
pub(super) struct IpvsTable<K = ipvs::Client> {
    client: K,
    draining: Draining,
    owner: Owner,
    /// What the last fully successful sync left: to tell drift from change.
    last: Option<Wanted>,
    /// Schedulers whose modules are loaded (or were tried and are missing).
    schedulers: BTreeSet<&'static str>,
    /// Whether reading the overview failed once (and was logged).
    overview_failed: bool,
    /// The last conversion of the desired state, by its generation.
    converted: Option<(u64, Wanted)>,
    /// The kernel's tick rate (`HZ`), learnt from the first persistent
    /// virtual server read both ways ([`reconcile::survey::tick_rate`]).
    hz: Option<u32>,
}

impl IpvsTable {
    /// Checks and loads the kernel modules, sets kube-proxy's sysctls and the
    /// IPVS timeouts.
    ///
    /// # Errors
    /// A missing module (named) or no IPVS netlink family.
    pub(super) fn start(options: &IpvsOptions) -> Result<Self, Error> {
        let schedulers: Vec<&str> = options.schedulers.iter().map(String::as_str).collect();
        Modules::host()
            .ensure(&ipvs_modules(&schedulers))
            .context("loading the IPVS kernel modules")?;
        let mut client = ipvs::Client::new().context("connecting to the kernel's IPVS")?;
        match Sysctls::default().ensure_ipvs_mode(options.strict_arp) {
            Ok(changed) => tracing::info!(?changed, "sysctls for IPVS mode"),
            Err(e) => tracing::warn!(error = %e, "cannot set a sysctl IPVS mode needs"),
        }
        let [tcp, tcp_fin, udp] = options
            .timeouts
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        if tcp > 0 || tcp_fin > 0 || udp > 0 {
            client
                .set_timeouts(&ipvs::Timeouts { tcp, tcp_fin, udp })
                .context("setting the IPVS timeouts")?;
        }
        Ok(IpvsTable::over(
            client,
            options.owner.clone(),
            options.drain_timeout,
        ))
    }
}

impl<K: IpvsKernel> IpvsTable<K> {
    /// The table over `client`, nothing learnt yet; leaving TCP real servers
    /// drain for at most `drain_timeout` unless their Service says otherwise.
    pub(super) fn over(client: K, owner: Owner, drain_timeout: Duration) -> Self {
        IpvsTable {
            client,
            draining: Draining::new(drain_timeout),
            owner,
            last: None,
            schedulers: BTreeSet::new(),
            overview_failed: false,
            converted: None,
            hz: None,
        }
    }

    /// The client of the kernel's table.
    pub(super) fn client(&self) -> &K {
        &self.client
    }

    /// Which virtual servers are ours, as configured.
    pub(super) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Loads the module of every scheduler `state` uses for the first time
    /// (a Service's annotation may name one the configuration does not), so
    /// that adding its virtual servers does not rely on the kernel loading
    /// modules on demand. A missing one is logged once; adding its virtual
    /// servers then fails, counted, and the others go on.
    fn load_schedulers(&mut self, state: &DesiredState) {
        for vs in state.virtual_servers() {
            let name = vs.scheduler.name();
            if self.schedulers.insert(name)
                && let Err(e) = self.client.load_scheduler(name)
            {
                tracing::warn!(scheduler = name, error = %e, "IPVS scheduler module missing");
            }
        }
    }

    /// Brings the virtual and real servers to `state`; `ownership` says
    /// which of the kernel's virtual servers are ours. A `full` sync looks
    /// at the whole table (finding and repairing drift anywhere) and reads
    /// exactly what differs; another reads only the virtual servers the
    /// change touched ([`Scope`]), so a change to one Service costs a few
    /// round trips instead of a dump of every real server. Returns the
    /// virtual servers kept while their real servers drain (their addresses
    /// stay). Times `ipvs_read` (reading the table) and `ipvs` (the rest).
    ///
    /// # Errors
    /// When the table cannot be read. Failed operations do not fail the
    /// sync: each is logged with its object and counted, and the others apply.
    pub(super) fn sync(
        &mut self,
        state: &DesiredState,
        owner: &Ownership,
        full: bool,
        summary: &mut SyncSummary,
    ) -> Result<BTreeSet<ipvs::ServiceKey>, Error> {
        let started = Instant::now();
        let wanted = self.wanted(state);
        self.load_schedulers(state);
        summary.timed("ipvs", started);
        let started = Instant::now();
        let observed = self.observe(&wanted, owner, full);
        summary.timed("ipvs_read", started);
        let started = Instant::now();
        let (observed, scope) = observed?;
        if let Some(last) = &self.last {
            let last = scope.as_ref().map_or(last, |s| &s.last);
            summary.drift(reconcile::drift::ipvs(last, &observed, owner));
        }
        let mut planner = Planner::new(
            scope.as_ref().map_or(&wanted, |s| &s.wanted),
            &observed,
            owner,
            Instant::now(),
        );
        let (mut clean, mut draining_services) = (true, BTreeSet::new());
        // Planned in parts of about one batch (a first sync's 110,000 operations are
        // never held at once) and applied in bounded pipelined batches, in order: the
        // results of one are counted before the next is sent.
        while let Some(mut plan) = planner.next(&mut self.draining, APPLY_BATCH) {
            for batch in plan.batches().flat_map(|b| b.chunks(APPLY_BATCH)) {
                let results = self.client.apply(batch);
                for (change, result) in batch.iter().zip(&results) {
                    match result {
                        Ok(()) => summary.applied(kind(change), 1),
                        Err(e) => {
                            clean = false;
                            summary.failed(kind(change), e);
                        }
                    }
                }
            }
            draining_services.append(&mut plan.draining_services);
        }
        planner.finish(&mut self.draining);
        summary.draining = self.draining.len();
        self.last = clean.then_some(wanted);
        summary.timed("ipvs", started);
        Ok(draining_services)
    }

    /// The desired virtual servers as `ipvs` values, converted again only
    /// when the desired state changed since the last sync, and then sharing
    /// every virtual server that did not change with the last conversion.
    fn wanted(&mut self, state: &DesiredState) -> Wanted {
        let generation = state.generation();
        if let Some((converted, wanted)) = &self.converted
            && *converted == generation
        {
            return wanted.clone();
        }
        let previous = self.converted.take().map(|(_, w)| w).unwrap_or_default();
        let wanted = reconcile::wanted::wanted(state.virtual_servers(), &previous);
        self.converted = Some((generation, wanted.clone()));
        wanted
    }

    /// Reads the IPVS table. A change-driven sync reads only the virtual
    /// servers in the change's [`Scope`]. A `full` sync, the first one, and
    /// any after a sync that did not apply cleanly survey the whole table
    /// through its overview, `/proc/net/ip_vs` ([`Survey`]), and read
    /// exactly only what differs; without the overview they read everything.
    fn observe(
        &mut self,
        wanted: &Wanted,
        owner: &Ownership,
        full: bool,
    ) -> Result<(Vec<ipvs::ServiceWithDestinations>, Option<Scope>), Error> {
        let (scope, ticks) = match &self.last {
            Some(last) if !full => (Some(Scope::changed(last, wanted, &self.draining)), None),
            _ => match self
                .survey(wanted, owner)
                .context("reading the IPVS virtual servers")?
            {
                Some((scope, ticks)) => (Some(scope), Some(ticks)),
                None => (None, None),
            },
        };
        let observed = match &scope {
            Some(scope) => self.client.list_only(&scope.keys),
            None => self.client.list(),
        }
        .context("reading the IPVS table")?;
        if self.hz.is_none() {
            self.hz = ticks.and_then(|t| reconcile::survey::tick_rate(&t, &observed));
            if let Some(hz) = self.hz {
                tracing::debug!(
                    hz,
                    "the kernel's tick rate, from a persistent virtual server"
                );
            }
        }
        Ok((observed, scope))
    }

    /// The scope of a sync that must look at the whole table, from its
    /// overview, with the persistence it showed of what is to be read;
    /// `None` when the overview cannot be read (warned about once). When
    /// the overview lacks a virtual server we want or programmed, one dump
    /// of the virtual servers tells whether it skipped it ([`Survey`]).
    ///
    /// # Errors
    /// When that dump fails.
    fn survey(
        &mut self,
        wanted: &Wanted,
        owner: &Ownership,
    ) -> Result<Option<(Scope, Ticks)>, ipvs::Error> {
        let mut survey = Survey::new(wanted, owner, self.hz);
        if let Err(e) = self.client.overview(&mut |s| survey.look(s)) {
            if !self.overview_failed {
                tracing::warn!(
                    error = %e,
                    "cannot read the IPVS overview; periodic syncs read every virtual server"
                );
                self.overview_failed = true;
            }
            return Ok(None);
        }
        if survey.lacks_any(self.last.as_ref()) {
            for entry in self.client.services()? {
                survey.exists(entry.service.key);
            }
        }
        Ok(Some(survey.scope(self.last.as_ref(), &self.draining)))
    }
}

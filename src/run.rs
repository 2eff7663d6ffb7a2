//! Runs the pipeline: source → model → desired state → dataplane, or prints the
//! desired state (`--dry-run`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use dataplane::iptables::IptablesDataplane;
use dataplane::ipvs::{IpvsDataplane, StatsDetail, StatsNames};
use dataplane::{DataplaneThread, Stopped};
use futures::StreamExt;
use model::source::{dir, kube as kube_source};
use model::{Model, ObjectId, ProxyFilter, SourceEvent, Warning};
use tokio::sync::{Mutex, mpsc};

use std::time::{Instant, SystemTime};

use crate::drift_events::DriftEvents;
use crate::node_info::node_info;
use crate::proxier::{Proxier, Rules};
use crate::runner::{Reason, Runner, Trigger};
use crate::server::{self, Shared};
use dataplane::ProxyMode;
use dataplane::ipvs::IpvsProbe;
use dataplane::mode::Selection;
use healthcheck::HealthState;
use healthcheck::ServiceHealth;
use proxy_metrics::changes as change_metrics;
use proxy_metrics::ipvs_stats::IpvsStatsCollector;
use proxy_metrics::{Metrics, Mode};
use settings::Settings;
use settings::cli::{Cli, Output};

/// Logs warnings and, with a cluster source, publishes them as Events on their objects.
fn report(warnings: &[Warning], events: Option<&Arc<kube_source::EventReporter>>) {
    for w in warnings {
        tracing::warn!("{w}");
        if let Some(events) = events {
            let (events, w) = (Arc::clone(events), w.clone());
            tokio::spawn(async move {
                if let Err(e) = events.publish(&w).await {
                    tracing::warn!(error = %e, "cannot publish an Event about {}", w.object);
                }
            });
        }
    }
}

/// Publishes a Warning Event on the Node, on a task of its own (it is sent again until
/// the API server takes it).
fn node_warning(events: &Arc<kube_source::EventReporter>, reason: &'static str, note: String) {
    let events = Arc::clone(events);
    tokio::spawn(async move {
        if let Err(e) = events.node_warning(reason, &note).await {
            tracing::warn!(error = %e, "cannot publish the {reason} Event on the Node");
        }
    });
}

/// The model: without the endpoints' Pods (the daemon decides nothing by them) unless
/// the IPVS statistics name them (`--ipvs-stats=backends` in IPVS mode).
fn model(
    filter: ProxyFilter,
    node_name: Option<String>,
    mode: ProxyMode,
    stats: StatsDetail,
) -> Model {
    let model = Model::new(filter, node_name);
    if mode == ProxyMode::Ipvs && stats == StatsDetail::Backends {
        model
    } else {
        model.without_pods()
    }
}

/// What the source is.
enum Source<'a> {
    Dir(&'a Path),
    Cluster,
}

/// Chooses the proxy mode (a dry run prints the configured one's state; otherwise IPVS is
/// detected and, when missing, replaced by the iptables mode unless `--no-fallback`), then
/// runs until the source ends (dry run) or forever. Returns the exit code: that of the
/// pre-flight with `--diff`, else success.
///
/// # Errors
/// Source failures that cannot be retried (unreadable directory, no cluster configuration);
/// IPVS missing with `--no-fallback`; with `--diff`, a node that cannot be read.
pub(crate) async fn run(cli: &Cli, settings: &Settings) -> anyhow::Result<ExitCode> {
    if cli.cleanup {
        let done = dataplane::cleanup(&crate::ipvs_mode::owner(settings))?;
        tracing::info!("cleanup done: {done}");
        return Ok(ExitCode::SUCCESS);
    }
    let selection = if cli.dry_run {
        Selection::configured(settings.mode)
    } else {
        let scheduler = settings.desired.scheduler.to_string();
        dataplane::mode::select(settings.mode, settings.no_fallback, || {
            IpvsProbe::detect(&[scheduler.as_str()])
        })?
    };
    if let Some(line) = selection.announcement() {
        tracing::warn!("{line}");
    }
    match selection.mode {
        ProxyMode::Ipvs => run_mode::<IpvsDataplane>(cli, settings, &selection).await,
        ProxyMode::Iptables => run_mode::<IptablesDataplane>(cli, settings, &selection).await,
    }
}

/// Runs the pipeline with dataplane `D` (its rules only, for a dry run).
async fn run_mode<D: Proxier>(
    cli: &Cli,
    settings: &Settings,
    selection: &Selection,
) -> anyhow::Result<ExitCode> {
    let source = match &cli.from_dir {
        Some(d) => Source::Dir(d),
        None => Source::Cluster,
    };
    let filter = ProxyFilter {
        proxy_name: settings.service_proxy_name.clone(),
    };
    let node_name = match source {
        Source::Dir(_) => settings.hostname_override.clone(),
        Source::Cluster => Some(match &settings.hostname_override {
            Some(h) => h.clone(),
            None => hostname()?,
        }),
    };
    let mut pipeline = Pipeline::<D::State> {
        model: model(
            filter.clone(),
            node_name.clone(),
            D::MODE,
            settings.ipvs_stats,
        ),
        state: None,
        node_name: node_name.clone(),
        node_ips: settings.node_ips.clone(),
        interfaces: None,
        interfaces_changed: false,
    };
    let mut invalid = Vec::new();
    let mut events_reporter: Option<Arc<kube_source::EventReporter>> = None;
    let (tx, rx) = mpsc::channel::<Vec<SourceEvent>>(16);
    match source {
        Source::Dir(path) => {
            let index = dir::stream(path, |events| {
                invalid.extend(pipeline.apply(events, None));
            })?;
            if !cli.dry_run {
                let period = std::time::Duration::from_secs(1);
                tokio::spawn(dir::watch(path.to_owned(), period, index, tx));
            }
        }
        Source::Cluster => {
            let client = client(settings, kube_source::Otherwise::InCluster).await?;
            let watch = kube_source::Watch {
                filter,
                node_name: node_name.clone().unwrap_or_default(),
            };
            events_reporter = Some(Arc::new(kube_source::EventReporter::new(
                client.clone(),
                &watch.node_name,
            )));
            let mut events = kube_source::events(client, &watch);
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    if tx.send(vec![event]).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    if cli.dry_run {
        let preview = match cli.diff {
            true => Some(crate::preflight::open(settings).await?),
            false => None,
        };
        dry_run(pipeline, rx, events_reporter, cli.output, settings, preview).await
    } else {
        if let Some(events) = &events_reporter {
            let (events, fallback) = (Arc::clone(events), selection.announcement());
            tokio::spawn(async move {
                if let Err(e) = events.node_starting().await {
                    tracing::warn!(error = %e, "cannot publish the Starting Event on the Node");
                }
                if let Some(line) = fallback
                    && let Err(e) = events.node_warning("ProxyModeFallback", &line).await
                {
                    tracing::warn!(error = %e, "cannot publish the fallback Event on the Node");
                }
            });
        }
        serve::<D>(pipeline, &invalid, rx, events_reporter, settings)
            .await
            .map(|()| ExitCode::SUCCESS)
    }
}

/// The model and the desired state (`R`, the mode's) computed from it.
struct Pipeline<R> {
    model: Model,
    /// Shared with the dataplane's thread while a sync programs it; changed in place only
    /// when held alone, so a sync's state never changes under it.
    state: Option<Arc<R>>,
    node_name: Option<String>,
    node_ips: Vec<std::net::IpAddr>,
    /// The node's interface addresses, once the dataplane has read them.
    interfaces: Option<BTreeSet<std::net::IpAddr>>,
    /// Whether the node's interface addresses changed since the state was brought up to
    /// date.
    interfaces_changed: bool,
}

/// What [`Pipeline::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Update {
    /// Nothing: no change, or no complete view from the source yet.
    Nothing,
    /// The desired state follows the model.
    Done,
    /// The model changed while a sync programs the state: the model keeps the changes,
    /// and the next sync brings the state up to date before it begins.
    Deferred,
}

/// Events from the source.
type Events = mpsc::Receiver<Vec<SourceEvent>>;

impl<R: Rules> Pipeline<R> {
    /// Applies a batch of source events to the model; returns the kinds of
    /// the objects found invalid, one per problem.
    fn apply(
        &mut self,
        events: Vec<SourceEvent>,
        reporter: Option<&Arc<kube_source::EventReporter>>,
    ) -> Vec<model::Kind> {
        let mut kinds = Vec::new();
        for event in events {
            let found = self.model.apply(event);
            report(&found, reporter);
            kinds.extend(found.iter().map(|w| w.kind));
        }
        kinds
    }

    fn node_info(&self) -> desired::NodeInfo {
        let name = self
            .node_name
            .as_deref()
            .or_else(|| self.model.node().map(|n| n.name.as_str()));
        node_info(&self.model, name, &self.node_ips, self.interfaces.as_ref())
    }

    /// Takes the node's interface addresses as read now; the next
    /// [`Pipeline::update`] recomputes the desired state when they changed.
    fn set_interfaces(&mut self, addresses: BTreeSet<std::net::IpAddr>) {
        let before = self.node_info();
        self.interfaces = Some(addresses);
        let info = self.node_info();
        if before != info {
            tracing::info!(addresses = ?info.addresses, "node addresses changed");
            self.interfaces_changed = true;
        }
    }

    /// Brings the desired state up to date with the model and the node's addresses,
    /// once the source has delivered a complete first view, and reports the Services
    /// that lost an address they claim by the change. A state a sync is programming is
    /// left alone ([`Update::Deferred`]).
    fn update(
        &mut self,
        settings: &Settings,
        reporter: Option<&Arc<kube_source::EventReporter>>,
    ) -> Update {
        let unchanged = self.model.changes().is_empty() && !self.interfaces_changed;
        if !self.model.is_synced() || (self.state.is_some() && unchanged) {
            return Update::Nothing;
        }
        let info = self.node_info();
        let changes = match &mut self.state {
            None => {
                let changes = self.model.take_changes();
                self.state = Some(Arc::new(R::new(settings, info, &self.model)));
                changes
            }
            Some(shared) => {
                let Some(state) = Arc::get_mut(shared) else {
                    return Update::Deferred;
                };
                let changes = self.model.take_changes();
                state.update(&self.model, &changes, &info);
                changes
            }
        };
        self.interfaces_changed = false;
        if let Some(state) = &self.state {
            state.log(&self.model, &changes);
            report(
                &desired::claims::warnings(state.claims(), &changes.services),
                reporter,
            );
        }
        Update::Done
    }
}

/// Prints the desired state once the source is complete, and returns; with a `preview`
/// (`--diff`), prints instead what a sync would change on this node, with the node's own
/// addresses (where NodePorts listen) read first.
async fn dry_run<R: Rules + Send + Sync + 'static>(
    mut pipeline: Pipeline<R>,
    mut rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    output: Output,
    settings: &Settings,
    preview: Option<crate::preflight::Preview>,
) -> anyhow::Result<ExitCode> {
    let mut preview = preview.inspect(|preview| {
        pipeline.interfaces = Some(preview.node_addresses.clone());
    });
    loop {
        if pipeline.update(settings, reporter.as_ref()) == Update::Done
            && let Some(state) = &pipeline.state
        {
            return match preview.take() {
                Some(preview) => crate::preflight::report(preview, Arc::clone(state)).await,
                None => print(&**state, output, settings).map(|()| ExitCode::SUCCESS),
            };
        }
        match rx.recv().await {
            Some(events) => {
                pipeline.apply(events, reporter.as_ref());
            }
            None => anyhow::bail!("the source stopped before delivering a complete view"),
        }
    }
}

/// Runs the proxy: health and metrics endpoints, the dataplane `D`, and the
/// sync loop (on every change, at most every `minSyncPeriod`; at least every
/// `syncPeriod`), until SIGTERM or Ctrl-C. The dataplane is left in place on
/// exit, so traffic keeps flowing while the proxy restarts.
async fn serve<D: Proxier>(
    mut pipeline: Pipeline<D::State>,
    invalid: &[model::Kind],
    rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    settings: &Settings,
) -> anyhow::Result<()> {
    let stop = shutdown();
    let health = HealthState::new(2 * settings.sync_period);
    health.started(SystemTime::now());
    let stats = (D::MODE == ProxyMode::Ipvs)
        .then(|| Arc::new(IpvsStatsCollector::kernel(settings.ipvs_stats)));
    let metrics = match &stats {
        Some(stats) => Metrics::for_mode(D::MODE).with_collector(Box::new(Arc::clone(stats))),
        None => Metrics::for_mode(D::MODE),
    };
    let metrics = Arc::new(metrics);
    for kind in invalid {
        Metrics::count(&metrics.invalid_objects, &kind.to_string(), 1);
    }
    serve_endpoints(settings, &health, &metrics, D::MODE, reporter.clone()).await?;
    crate::node_setup::conntrack(&settings.conntrack)?;
    crate::node_setup::oom_score_adj(settings.oom_score_adj);
    let dataplane = DataplaneThread::<D>::start(D::start(settings))
        .await
        .with_context(|| format!("starting the {} dataplane", D::MODE))?;
    metrics
        .proxy_mode
        .get_or_create(&Mode {
            mode: D::MODE.as_str().into(),
        })
        .set(1);
    pipeline.interfaces = Some(dataplane.node_addresses().await??);
    // As kube-proxy's SyncLoop: a sync is as good as queued while the sources list.
    queued(&metrics, &pipeline.node_info().families());
    let service_health =
        ServiceHealth::new(&pipeline.node_info().name, health.clone(), reporter.clone());
    let runner = Runner::new(settings.min_sync_period, settings.sync_period);
    let trigger = runner.trigger();
    // A directory source has delivered its complete first view already.
    if pipeline.update(settings, reporter.as_ref()) == Update::Done {
        health.queued(SystemTime::now());
        trigger.request();
    }
    let pipeline = Mutex::new(pipeline);
    let syncer = Syncer {
        pipeline: &pipeline,
        dataplane,
        service_health: Mutex::new(service_health),
        metrics: &metrics,
        stats,
        health: &health,
        settings,
        reporter: reporter.clone(),
        drift_events: std::sync::Mutex::new(DriftEvents::default()),
    };
    let source = follow(
        &pipeline, rx, reporter, &metrics, &health, &trigger, settings,
    );
    let sync_loop = runner.run(|reason| syncer.sync(reason));
    let result = tokio::select! {
        result = source => result,
        stopped = sync_loop => Err(stopped.into()),
        () = stop => {
            tracing::info!("stopping; the dataplane stays in place and keeps forwarding");
            Ok(())
        }
    };
    // A sync in the kernel ends before the process does.
    syncer.dataplane.stop().await;
    result
}

/// Serves `/healthz`, `/livez`, `/metrics` and `/proxyMode` from now on.
///
/// # Errors
/// When an address cannot be bound.
async fn serve_endpoints(
    settings: &Settings,
    health: &HealthState,
    metrics: &Arc<Metrics>,
    mode: ProxyMode,
    reporter: Option<Arc<kube_source::EventReporter>>,
) -> anyhow::Result<()> {
    let shared = Shared {
        health: health.clone(),
        metrics: Arc::clone(metrics),
        mode: mode.as_str(),
    };
    server::serve(
        settings.healthz_bind_address,
        settings.metrics_bind_address,
        settings.bind_address_hard_fail,
        shared,
        move |reason, note| {
            if let Some(events) = &reporter {
                node_warning(events, reason, note);
            }
        },
    )
    .await?;
    Ok(())
}

/// Applies the source's events to the model as they come, and asks for a
/// sync when the desired state changed.
///
/// # Errors
/// When the source stops.
async fn follow<R: Rules>(
    pipeline: &Mutex<Pipeline<R>>,
    mut rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    metrics: &Metrics,
    health: &HealthState,
    trigger: &Trigger,
    settings: &Settings,
) -> anyhow::Result<()> {
    while let Some(events) = rx.recv().await {
        change_metrics::count_events(metrics, &events);
        let mut p = pipeline.lock().await;
        for kind in p.apply(events, reporter.as_ref()) {
            Metrics::count(&metrics.invalid_objects, &kind.to_string(), 1);
        }
        change_metrics::pending(metrics, p.model.pending());
        health.set_node_eligible(p.model.node().is_none_or(|n| n.eligible));
        if p.update(settings, reporter.as_ref()) != Update::Nothing {
            queued(metrics, &p.node_info().families());
            health.queued(SystemTime::now());
            trigger.request();
        }
    }
    anyhow::bail!("the source stopped")
}

/// What one sync of the loop needs.
struct Syncer<'a, D: Proxier> {
    pipeline: &'a Mutex<Pipeline<D::State>>,
    dataplane: DataplaneThread<D>,
    service_health: Mutex<ServiceHealth>,
    metrics: &'a Metrics,
    /// In IPVS mode: the statistics in `/metrics`, named after the state synced.
    stats: Option<Arc<IpvsStatsCollector>>,
    health: &'a HealthState,
    settings: &'a Settings,
    /// With a cluster source: where warnings and drift Events go.
    reporter: Option<Arc<kube_source::EventReporter>>,
    /// The rate limit of drift Events.
    drift_events: std::sync::Mutex<DriftEvents>,
}

/// What a sync takes from the pipeline as it begins: the state it programs, and
/// everything the bookkeeping after it derives from the model, read at that same moment
/// (the rule: a sync's bookkeeping describes the model and state it synced). Source
/// events applied while the sync is in the kernel change the model, not this; the next
/// sync takes them.
struct Snapshot<R> {
    state: Arc<R>,
    /// The changes the sync takes, for the network programming latency.
    taken: model::Pending,
    families: Vec<model::IpFamily>,
    /// kube-proxy's Services without a local endpoint.
    no_local: Vec<desired::no_local::NoLocal>,
    /// The health check node port servers wanted.
    health_checks: std::collections::BTreeMap<ObjectId, desired::health_check::HealthCheck>,
    /// New names for the IPVS statistics, when the virtual servers changed.
    stats_names: Option<StatsNames>,
}

impl<D: Proxier> Syncer<'_, D> {
    /// One sync: the node's addresses read again when periodic, the kernel
    /// brought to the desired state on the dataplane's thread (the pipeline is
    /// not locked meanwhile), the outcome reported; after a complete sync,
    /// health advances and the health check node ports follow (as kube-proxy,
    /// only once the rules were written).
    ///
    /// # Errors
    /// When the dataplane's thread is gone.
    async fn sync(&self, reason: Reason) -> Result<(), Stopped> {
        let full = reason == Reason::Periodic;
        let addresses = match full {
            true => self
                .dataplane
                .node_addresses()
                .await?
                .inspect_err(|e| tracing::error!(error = %e, "keeping the node addresses"))
                .ok(),
            false => None,
        };
        let Some(snapshot) = self.snapshot(addresses).await else {
            return Ok(());
        };
        let started = Instant::now();
        let (summary, state) = self.dataplane.sync(snapshot.state, full).await?;
        let took = started.elapsed();
        // The names the statistics had before are dropped here, before the memory is read.
        if let (Some(stats), Some(names)) = (&self.stats, snapshot.stats_names) {
            stats.follow(names);
        }
        crate::memory::release_free();
        let sync = crate::sync_report::Sync {
            mode: D::MODE,
            full,
            took,
            objects: state.size(),
            memory: crate::memory::usage(),
            families: snapshot.families.clone(),
        };
        crate::sync_report::report(&summary, sync, self.metrics);
        if let Some(reporter) = &self.reporter {
            let note = self
                .drift_events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(&summary.drift, Instant::now());
            if let Some(note) = note {
                node_warning(reporter, crate::drift_events::REASON, note);
            }
        }
        if summary.complete() {
            let families = &snapshot.families;
            let now = SystemTime::now();
            change_metrics::programmed(self.metrics, &snapshot.taken, families, now);
            change_metrics::no_local(self.metrics, D::MODE, &snapshot.no_local, families);
            for family in families {
                let label = proxy_metrics::IpFamily::from(*family);
                self.metrics.last_sync.get_or_create(&label).set(unix_now());
            }
            self.health.updated(now);
            let wanted = &snapshot.health_checks;
            let failed = self.service_health.lock().await.sync(wanted).await;
            Metrics::count(&self.metrics.sync_errors, healthcheck::ERROR_KIND, failed);
        }
        Ok(())
    }

    /// Takes the [`Snapshot`] a sync programs, with the node's `addresses` when read,
    /// the state brought up to date first; `None` before the source's first complete
    /// view.
    async fn snapshot(
        &self,
        addresses: Option<BTreeSet<std::net::IpAddr>>,
    ) -> Option<Snapshot<D::State>> {
        let mut p = self.pipeline.lock().await;
        if let Some(addresses) = addresses {
            p.set_interfaces(addresses);
        }
        // The last sync has given the state back: it is brought up to date here.
        p.update(self.settings, self.reporter.as_ref());
        let state = Arc::clone(p.state.as_ref()?);
        let taken = p.model.take_pending();
        change_metrics::pending(self.metrics, p.model.pending());
        let node = p.node_info();
        let pods = self.settings.ipvs_stats == StatsDetail::Backends;
        let stats_names = match (&self.stats, state.ipvs()) {
            (Some(stats), Some(ipvs)) => stats.names_of(ipvs, pods.then_some(&p.model)),
            _ => None,
        };
        Some(Snapshot {
            taken,
            families: node.families(),
            no_local: desired::no_local::no_local_endpoints(&p.model, &node),
            health_checks: desired::health_check::health_checks(
                &p.model,
                &node,
                &self.settings.desired.node_port_addresses,
            ),
            stats_names,
            state,
        })
    }
}

/// Listens for SIGTERM and SIGINT (Ctrl-C) from this call on, and resolves when one comes.
/// Called before the daemon does anything else, so that a signal sent while it starts (the
/// dataplane's first read, the first sync) is kept for the moment it can stop cleanly,
/// instead of being lost or ending the process midway.
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind)
            .inspect_err(|e| tracing::warn!(error = %e, signal = name, "cannot watch the signal"))
            .ok()
    };
    let (term, int) = (
        listen(SignalKind::terminate(), "SIGTERM"),
        listen(SignalKind::interrupt(), "SIGINT"),
    );
    async move {
        let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait(term) => {}
            () = wait(int) => {}
        }
    }
}

/// Sets `last_queued_timestamp_seconds` of `families` to now.
fn queued(metrics: &Metrics, families: &[model::IpFamily]) {
    for family in families {
        let label = proxy_metrics::IpFamily::from(*family);
        metrics.last_queued.get_or_create(&label).set(unix_now());
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn print<R: Rules>(state: &R, output: Output, settings: &Settings) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if output == Output::Text {
        stdout.write_all(settings.summary().as_bytes())?;
    }
    state.print(&mut stdout, output)
}

pub(crate) fn hostname() -> anyhow::Result<String> {
    model::node::local_name().context("reading the host name (use --hostname-override)")
}

/// The API client for `settings`' kubeconfig, or else as `otherwise` says.
pub(crate) async fn client(
    settings: &Settings,
    otherwise: kube_source::Otherwise,
) -> anyhow::Result<kube::Client> {
    kube_source::client(
        settings.kubeconfig.as_deref(),
        settings.master.as_deref(),
        otherwise,
    )
    .await
    .map_err(|e| {
        // The message already holds its cause: one line, as before.
        let hint = match e {
            kube_source::ClientError::NoConfiguration(_)
            | kube_source::ClientError::NotInCluster(_) => "; use --kubeconfig or --from-dir",
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;

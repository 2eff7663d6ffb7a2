//! Runs the pipeline: source → model → desired state → dataplane, or prints the
//! desired state (`--dry-run`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use model::source::{dir, kube as kube_source};
use model::{Model, ProxyFilter, SourceEvent, Warning};
use tokio::sync::mpsc;

use std::time::{Instant, SystemTime};

use crate::cli::{Cli, Output};
use crate::dataplane::IpvsDataplane;
use crate::health::HealthState;
use crate::iptables_mode::IptablesDataplane;
use crate::metrics::{Metrics, Mode};
use crate::mode::{IpvsProbe, ProxyMode, Selection};
use crate::node_info::node_info;
use crate::proxier::{Dataplane, Rules};
use crate::runner::{Reason, Runner};
use crate::server::{self, Shared};
use crate::service_health::ServiceHealth;
use crate::settings::Settings;

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

/// What the source is.
enum Source<'a> {
    Dir(&'a Path),
    Cluster,
}

/// Chooses the proxy mode (a dry run prints the configured one's state; otherwise IPVS is
/// detected and, when missing, replaced by the iptables mode unless `--no-fallback`), then
/// runs until the source ends (dry run) or forever.
///
/// # Errors
/// Source failures that cannot be retried (unreadable directory, no cluster configuration);
/// IPVS missing with `--no-fallback`.
pub(crate) async fn run(cli: &Cli, settings: &Settings) -> anyhow::Result<()> {
    if cli.cleanup {
        let done = crate::dataplane::cleanup(
            settings.exclude_cidrs.clone(),
            settings.node_port_range.clone(),
        )
        .await?;
        tracing::info!("cleanup done: {done}");
        return Ok(());
    }
    let selection = if cli.dry_run {
        Selection::configured(settings.mode)
    } else {
        let scheduler = settings.desired.scheduler.to_string();
        crate::mode::select(settings.mode, settings.no_fallback, || {
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
async fn run_mode<D: Dataplane>(
    cli: &Cli,
    settings: &Settings,
    selection: &Selection,
) -> anyhow::Result<()> {
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
    let mut pipeline = Pipeline::<D::Rules> {
        model: Model::new(filter.clone(), node_name.clone()).without_pods(),
        state: None,
        node_name: node_name.clone(),
        node_ips: cli.node_ips.clone(),
        interfaces: None,
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
            let client = client(settings).await?;
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
        dry_run(pipeline, rx, events_reporter, cli.output, settings).await
    } else {
        if let (Some(line), Some(events)) = (selection.announcement(), &events_reporter) {
            let events = Arc::clone(events);
            tokio::spawn(async move {
                if let Err(e) = events.node_warning("ProxyModeFallback", &line).await {
                    tracing::warn!(error = %e, "cannot publish the fallback Event on the Node");
                }
            });
        }
        serve::<D>(pipeline, &invalid, rx, events_reporter, settings).await
    }
}

/// The model and the desired state (`R`, the mode's) computed from it.
struct Pipeline<R> {
    model: Model,
    state: Option<R>,
    node_name: Option<String>,
    node_ips: Vec<std::net::IpAddr>,
    /// The node's interface addresses, once the dataplane has read them.
    interfaces: Option<BTreeSet<std::net::IpAddr>>,
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

    /// Takes the node's interface addresses as read now; recomputes the
    /// desired state when they changed.
    fn set_interfaces(&mut self, addresses: BTreeSet<std::net::IpAddr>) {
        let before = self.node_info();
        self.interfaces = Some(addresses);
        let info = self.node_info();
        if let Some(state) = &mut self.state
            && before != info
        {
            tracing::info!(addresses = ?info.addresses, "node addresses changed");
            state.update(&self.model, &model::Changes::default(), &info);
        }
    }

    /// Brings the desired state up to date with the model, once the source
    /// has delivered a complete first view, and reports the Services that lost
    /// an address they claim by the change. Returns the changes applied.
    fn update(
        &mut self,
        settings: &Settings,
        reporter: Option<&Arc<kube_source::EventReporter>>,
    ) -> Option<model::Changes> {
        if !self.model.is_synced() {
            return None;
        }
        let changes = self.model.take_changes();
        let info = self.node_info();
        match &mut self.state {
            None => self.state = Some(R::new(settings, info, &self.model)),
            Some(_) if changes.is_empty() => return None,
            Some(s) => s.update(&self.model, &changes, &info),
        }
        if let Some(state) = &self.state {
            state.log(&self.model, &changes);
            report(
                &desired::claims::warnings(state.claims(), &changes.services),
                reporter,
            );
        }
        Some(changes)
    }
}

/// Prints the desired state once the source is complete, and returns.
async fn dry_run<R: Rules>(
    mut pipeline: Pipeline<R>,
    mut rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    output: Output,
    settings: &Settings,
) -> anyhow::Result<()> {
    loop {
        if pipeline.update(settings, reporter.as_ref()).is_some()
            && let Some(state) = &pipeline.state
        {
            return print(state, output, settings);
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
async fn serve<D: Dataplane>(
    pipeline: Pipeline<D::Rules>,
    invalid: &[model::Kind],
    mut rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    settings: &Settings,
) -> anyhow::Result<()> {
    let health = HealthState::new(2 * settings.sync_period);
    let metrics = Arc::new(Metrics::new());
    for kind in invalid {
        Metrics::count(&metrics.invalid_objects, &kind.to_string(), 1);
    }
    let shared = Shared {
        health: health.clone(),
        metrics: Arc::clone(&metrics),
        mode: D::MODE.as_str(),
    };
    let endpoints = server::bind(
        settings.healthz_bind_address,
        settings.metrics_bind_address,
        shared,
    )
    .await?;
    tokio::spawn(async move {
        if let Err(e) = endpoints.await {
            tracing::error!(error = %e, "the health and metrics endpoints stopped");
        }
    });
    let dataplane = D::start(settings)
        .await
        .with_context(|| format!("starting the {} dataplane", D::MODE))?;
    let dataplane = Arc::new(tokio::sync::Mutex::new(dataplane));
    metrics
        .proxy_mode
        .get_or_create(&Mode {
            mode: D::MODE.as_str().into(),
        })
        .set(1);

    let mut pipeline = pipeline;
    pipeline.interfaces = Some(dataplane.lock().await.node_addresses().await?);
    let service_health = Arc::new(tokio::sync::Mutex::new(ServiceHealth::new(
        &pipeline.node_info().name,
        health.clone(),
        Arc::clone(&metrics),
        reporter.clone(),
    )));
    let runner = Runner::new(settings.min_sync_period, settings.sync_period);
    let trigger = runner.trigger();
    // A directory source has delivered its complete first view already.
    if pipeline.update(settings, reporter.as_ref()).is_some() {
        health.queued(SystemTime::now());
        trigger.request();
    }
    let pipeline = Arc::new(tokio::sync::Mutex::new(pipeline));
    let source = {
        let (pipeline, metrics, health) =
            (Arc::clone(&pipeline), Arc::clone(&metrics), health.clone());
        async move {
            while let Some(events) = rx.recv().await {
                let mut p = pipeline.lock().await;
                for kind in p.apply(events, reporter.as_ref()) {
                    Metrics::count(&metrics.invalid_objects, &kind.to_string(), 1);
                }
                health.set_node_eligible(p.model.node().is_none_or(|n| n.eligible));
                if let Some(changes) = p.update(settings, reporter.as_ref()) {
                    metrics
                        .service_changes
                        .inc_by(changes.services.len() as u64);
                    metrics.last_queued.set(unix_now());
                    health.queued(SystemTime::now());
                    trigger.request();
                }
            }
            anyhow::bail!("the source stopped")
        }
    };
    let sync_loop = runner.run(|reason| {
        let (pipeline, metrics, health) =
            (Arc::clone(&pipeline), Arc::clone(&metrics), health.clone());
        let (dataplane, service_health) = (Arc::clone(&dataplane), Arc::clone(&service_health));
        async move {
            let mut p = pipeline.lock().await;
            let mut dataplane = dataplane.lock().await;
            let full = reason == Reason::Periodic;
            if full {
                match dataplane.node_addresses().await {
                    Ok(addresses) => p.set_interfaces(addresses),
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "keeping the node addresses")
                    }
                }
            }
            let Some(state) = &p.state else { return };
            let started = Instant::now();
            let summary = dataplane.sync(state, reason).await;
            let took = started.elapsed();
            crate::memory::release_free();
            let memory = crate::memory::usage();
            summary.report(&metrics, D::MODE, full, took, state.size(), memory);
            if summary.complete() {
                metrics.last_sync.set(unix_now());
                health.updated(SystemTime::now());
                // As kube-proxy, after a successful sync only: the health check node ports.
                let wanted = desired::health_check::health_checks(
                    &p.model,
                    &p.node_info(),
                    &settings.desired.node_port_addresses,
                );
                service_health.lock().await.sync(&wanted).await;
            }
        }
    });
    tokio::select! {
        result = source => result,
        () = sync_loop => Ok(()),
        () = shutdown() => {
            tracing::info!("stopping; the dataplane stays in place and keeps forwarding");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the proxy");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
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

fn hostname() -> anyhow::Result<String> {
    model::node::local_name().context("reading the host name (use --hostname-override)")
}

async fn client(settings: &Settings) -> anyhow::Result<kube::Client> {
    kube_source::client(settings.kubeconfig.as_deref())
        .await
        .map_err(|e| {
            // The message already holds its cause: one line, as before.
            let hint = match e {
                kube_source::ClientError::NoConfiguration(_) => "; use --kubeconfig or --from-dir",
                _ => "",
            };
            anyhow::anyhow!("{e}{hint}")
        })
}

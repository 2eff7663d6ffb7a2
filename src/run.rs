//! Runs the pipeline: source → model → desired state → dataplane, or prints the
//! desired state (`--dry-run`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use desired::DesiredState;
use futures::StreamExt;
use model::source::{dir, kube as kube_source};
use model::{Model, ProxyFilter, SourceEvent, Warning};
use tokio::sync::mpsc;

use std::time::{Instant, SystemTime};

use crate::cli::{Cli, Output};
use crate::dataplane::{IpvsDataplane, IpvsOptions};
use crate::health::HealthState;
use crate::metrics::{Metrics, Mode};
use crate::node_info::node_info;
use crate::runner::{Reason, Runner};
use crate::server::{self, Shared};
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

/// Runs until the source ends (dry run) or forever.
///
/// # Errors
/// Source failures that cannot be retried (unreadable directory, no cluster configuration).
pub(crate) async fn run(cli: &Cli, settings: &Settings) -> anyhow::Result<()> {
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
    let mut pipeline = Pipeline {
        model: Model::new(filter.clone(), node_name.clone()),
        state: None,
        node_name: node_name.clone(),
        node_ips: cli.node_ips.clone(),
    };
    let mut invalid = Vec::new();
    let mut events_reporter: Option<Arc<kube_source::EventReporter>> = None;
    let (tx, rx) = mpsc::channel::<(Vec<SourceEvent>, Vec<Warning>)>(16);
    match source {
        Source::Dir(path) => {
            let fingerprint = dir::fingerprint(path)?;
            let mut snapshot = dir::read(path)?;
            let warnings = std::mem::take(&mut snapshot.warnings);
            invalid = pipeline.apply(snapshot.into_events(), &warnings, None);
            if !cli.dry_run {
                let period = std::time::Duration::from_secs(1);
                tokio::spawn(dir::watch(path.to_owned(), period, fingerprint, tx));
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
                    if tx.send((vec![event], Vec::new())).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    if cli.dry_run {
        dry_run(pipeline, rx, events_reporter, cli.output, settings).await
    } else {
        serve(pipeline, &invalid, rx, events_reporter, settings).await
    }
}

/// The model and the desired state computed from it.
struct Pipeline {
    model: Model,
    state: Option<DesiredState>,
    node_name: Option<String>,
    node_ips: Vec<std::net::IpAddr>,
}

/// Events from the source, with the warnings found while reading them.
type Events = mpsc::Receiver<(Vec<SourceEvent>, Vec<Warning>)>;

impl Pipeline {
    /// Applies a batch of source events to the model; returns the kinds of
    /// the objects found invalid, one per problem.
    fn apply(
        &mut self,
        events: Vec<SourceEvent>,
        warnings: &[Warning],
        reporter: Option<&Arc<kube_source::EventReporter>>,
    ) -> Vec<model::Kind> {
        report(warnings, reporter);
        let mut kinds: Vec<model::Kind> = warnings.iter().map(|w| w.kind).collect();
        for event in events {
            let found = self.model.apply(event);
            report(&found, reporter);
            kinds.extend(found.iter().map(|w| w.kind));
        }
        kinds
    }

    /// Brings the desired state up to date with the model, once the source
    /// has delivered a complete first view. Returns the changes applied.
    fn update(&mut self, settings: &Settings) -> Option<model::Changes> {
        if !self.model.is_synced() {
            return None;
        }
        let changes = self.model.take_changes();
        let name = self
            .node_name
            .as_deref()
            .or_else(|| self.model.node().map(|n| n.name.as_str()));
        let info = node_info(&self.model, name, &self.node_ips);
        match &mut self.state {
            None => {
                self.state = Some(DesiredState::new(
                    settings.desired.clone(),
                    info,
                    &self.model,
                ))
            }
            Some(_) if changes.is_empty() => return None,
            Some(s) => s.update(&self.model, &changes, &info),
        }
        if let Some(state) = &self.state {
            log_update(state, &self.model, &changes);
        }
        Some(changes)
    }
}

/// Prints the desired state once the source is complete, and returns.
async fn dry_run(
    mut pipeline: Pipeline,
    mut rx: Events,
    reporter: Option<Arc<kube_source::EventReporter>>,
    output: Output,
    settings: &Settings,
) -> anyhow::Result<()> {
    loop {
        if pipeline.update(settings).is_some()
            && let Some(state) = &pipeline.state
        {
            return print(state, output, settings);
        }
        match rx.recv().await {
            Some((events, warnings)) => {
                pipeline.apply(events, &warnings, reporter.as_ref());
            }
            None => anyhow::bail!("the source stopped before delivering a complete view"),
        }
    }
}

/// Runs the proxy: health and metrics endpoints, the IPVS dataplane, and the
/// sync loop (on every change, at most every `minSyncPeriod`; at least every
/// `syncPeriod`), until SIGTERM or Ctrl-C. The dataplane is left in place on
/// exit, so traffic keeps flowing while the proxy restarts.
async fn serve(
    pipeline: Pipeline,
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
        mode: "ipvs",
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
    let options = IpvsOptions {
        exclude_cidrs: settings.exclude_cidrs.clone(),
        strict_arp: settings.strict_arp,
        timeouts: settings.ipvs_timeouts,
        schedulers: vec![settings.desired.scheduler.to_string()],
    };
    let dataplane = IpvsDataplane::start(&options).await.context(
        "IPVS is not usable on this node (the iptables fallback is not implemented yet: issue 8)",
    )?;
    let dataplane = Arc::new(tokio::sync::Mutex::new(dataplane));
    metrics
        .proxy_mode
        .get_or_create(&Mode {
            mode: "ipvs".into(),
        })
        .set(1);
    tracing::info!("IPVS dataplane ready on {}", crate::dataplane::DUMMY_LINK);

    let mut pipeline = pipeline;
    let runner = Runner::new(settings.min_sync_period, settings.sync_period);
    let trigger = runner.trigger();
    // A directory source has delivered its complete first view already.
    if pipeline.update(settings).is_some() {
        health.queued(SystemTime::now());
        trigger.request();
    }
    let pipeline = Arc::new(tokio::sync::Mutex::new(pipeline));
    let source = {
        let (pipeline, metrics, health) =
            (Arc::clone(&pipeline), Arc::clone(&metrics), health.clone());
        async move {
            while let Some((events, warnings)) = rx.recv().await {
                let mut p = pipeline.lock().await;
                for kind in p.apply(events, &warnings, reporter.as_ref()) {
                    Metrics::count(&metrics.invalid_objects, &kind.to_string(), 1);
                }
                health.set_node_eligible(p.model.node().is_none_or(|n| n.eligible));
                if let Some(changes) = p.update(settings) {
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
        let dataplane = Arc::clone(&dataplane);
        async move {
            let p = pipeline.lock().await;
            let mut dataplane = dataplane.lock().await;
            let Some(state) = &p.state else { return };
            let started = Instant::now();
            match dataplane.sync(state, reason).await {
                Ok(summary) => {
                    let took = started.elapsed();
                    summary.record(&metrics);
                    metrics.sync_duration.observe(took.as_secs_f64());
                    match reason {
                        Reason::Periodic => metrics.sync_full_duration.observe(took.as_secs_f64()),
                        Reason::Change => metrics.sync_partial_duration.observe(took.as_secs_f64()),
                    }
                    metrics.last_sync.set(unix_now());
                    health.updated(SystemTime::now());
                    tracing::info!(
                        ?reason,
                        took_ms = took.as_millis() as u64,
                        virtual_servers = state.virtual_servers().count(),
                        applied = ?summary.applied,
                        failed = ?summary.failed,
                        drift = ?summary.drift,
                        draining = summary.draining,
                        "sync done"
                    );
                }
                Err(e) => {
                    Metrics::count(&metrics.sync_errors, "sync", 1);
                    tracing::error!(
                        error = format!("{e:#}"),
                        "sync failed; retrying on the next change or period"
                    );
                }
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

fn log_update(state: &DesiredState, model: &Model, changes: &model::Changes) {
    for (key, owners) in state.conflicts() {
        tracing::warn!(
            ?key,
            ?owners,
            "several Services claim one virtual server; the first wins"
        );
    }
    let (services, slices) = model.len();
    tracing::info!(
        services,
        slices,
        changed_services = changes.services.len(),
        virtual_servers = state.virtual_servers().count(),
        "desired state updated"
    );
}

fn print(state: &DesiredState, output: Output, settings: &Settings) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Text => {
            stdout.write_all(settings.summary().as_bytes())?;
            stdout.write_all(desired::render::text(state).as_bytes())?;
        }
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, &desired::render::json(state))?;
            stdout.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn hostname() -> anyhow::Result<String> {
    if let Ok(name) = std::env::var("NODE_NAME") {
        return Ok(name.trim().to_lowercase());
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the host name (use --hostname-override)")?;
    Ok(name.trim().to_lowercase())
}

async fn client(settings: &Settings) -> anyhow::Result<kube::Client> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster configuration (in-cluster, $KUBECONFIG or ~/.kube/config); use --kubeconfig or --from-dir")?,
    };
    kube::Client::try_from(config).context("building the API client")
}

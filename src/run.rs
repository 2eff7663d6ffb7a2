//! Runs the pipeline: source → model → desired state (→ dataplane, in a later step).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use desired::DesiredState;
use futures::StreamExt;
use model::source::{dir, kube as kube_source};
use model::{Model, ProxyFilter, SourceEvent, Warning};
use tokio::sync::mpsc;

use crate::cli::{Cli, Output};
use crate::node_info::node_info;
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
    let mut model = Model::new(filter.clone(), node_name.clone());
    let mut events_reporter: Option<Arc<kube_source::EventReporter>> = None;
    let (tx, mut rx) = mpsc::channel::<(Vec<SourceEvent>, Vec<Warning>)>(16);
    match source {
        Source::Dir(path) => {
            let fingerprint = dir::fingerprint(path)?;
            let mut snapshot = dir::read(path)?;
            report(&std::mem::take(&mut snapshot.warnings), None);
            for event in snapshot.into_events() {
                report(&model.apply(event), None);
            }
            if !cli.dry_run {
                let period = std::time::Duration::from_secs(1);
                tokio::spawn(dir::watch(path.to_owned(), period, fingerprint, tx));
            }
        }
        Source::Cluster => {
            let client = client(settings).await?;
            let watch = kube_source::Watch {
                filter,
                node_name: node_name.unwrap_or_default(),
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

    let node = |model: &Model| node_info(model, node_name_for(model, settings), &cli.node_ips);
    let mut state: Option<DesiredState> = None;
    loop {
        if model.is_synced() {
            let changes = model.take_changes();
            let info = node(&model);
            let updated = match &mut state {
                None => {
                    state = Some(DesiredState::new(settings.desired.clone(), info, &model));
                    true
                }
                Some(s) if !changes.is_empty() => {
                    s.update(&model, &changes, &info);
                    true
                }
                Some(_) => false,
            };
            if let Some(s) = state.as_ref().filter(|_| updated) {
                if cli.dry_run {
                    return print(s, cli.output, settings);
                }
                log_update(s, &model, &changes);
                if !settings.min_sync_period.is_zero() {
                    tokio::time::sleep(settings.min_sync_period).await;
                }
            }
        }
        let received = tokio::time::timeout(settings.sync_period, rx.recv()).await;
        match received {
            Ok(Some((events, warnings))) => {
                report(&warnings, events_reporter.as_ref());
                for event in events {
                    report(&model.apply(event), events_reporter.as_ref());
                }
            }
            Ok(None) => anyhow::bail!("the source stopped"),
            Err(_elapsed) => {}
        }
    }
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
        "desired state updated (no dataplane yet: nothing is programmed)"
    );
}

fn node_name_for<'a>(model: &'a Model, settings: &'a Settings) -> Option<&'a str> {
    settings
        .hostname_override
        .as_deref()
        .or_else(|| model.node().map(|n| n.name.as_str()))
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

//! `kube-ipvs-proxy explain NAMESPACE/SERVICE`: reads the same source as the daemon (a
//! directory, or the API server once, with the daemon's RBAC), computes the desired state
//! with the daemon's settings and prints [`desired::explain`]'s answer for one Service.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use model::source::{dir, kube as kube_source};
use model::{Admission, Model, ObjectId, ProxyFilter, SourceEvent};
use reconcile::inspect::Difference;

use settings::Settings;
use settings::cli::{Cli, ExplainArgs, Output};

/// What is printed: the explanation and, with `--live`, what the kernel has otherwise
/// (`kernel`: `null` without `--live`, `[]` when it holds exactly what is wanted).
#[derive(Debug, serde::Serialize)]
struct Answer {
    #[serde(flatten)]
    explanation: desired::explain::Explanation,
    kernel: Option<Vec<Difference>>,
}

/// What a source gave: its objects for the model, and what the model makes of the Service
/// asked about (the model itself keeps only the Services it proxies).
struct Read {
    events: Vec<SourceEvent>,
    admission: Option<Admission>,
    node_name: Option<String>,
    /// Where the objects come from, for messages.
    from: String,
}

/// Runs `explain` and prints its answer.
///
/// # Errors
/// An unreadable source, or no such Service (naming it and the source).
pub(crate) async fn run(cli: &Cli, settings: &Settings, args: &ExplainArgs) -> anyhow::Result<()> {
    let filter = ProxyFilter {
        proxy_name: settings.service_proxy_name.clone(),
    };
    let id = &args.service;
    let read = match &cli.from_dir {
        Some(path) => from_dir(path, id, &filter, settings)?,
        None => from_cluster(id, &filter, settings).await?,
    };
    let Some(admission) = read.admission else {
        anyhow::bail!("Service {id} not found in {}", read.from);
    };
    let mut model = Model::new(filter.clone(), read.node_name.clone());
    for event in read.events {
        for warning in model.apply(event) {
            tracing::debug!("{warning}");
        }
    }
    let interfaces = if args.live {
        Some(dataplane::inspect::addresses()?.node)
    } else {
        None
    };
    let node = crate::node_info::node_info(
        &model,
        read.node_name.as_deref(),
        &settings.node_ips,
        interfaces.as_ref(),
    );
    let explanation =
        desired::explain::of_model(id, &admission, &model, node, settings.desired.clone());
    let kernel = if args.live {
        let keys = reconcile::inspect::wanted_keys(&explanation);
        let observed = dataplane::inspect::observe(&keys)?;
        Some(reconcile::inspect::differences(
            &explanation,
            observed.kernel(),
        ))
    } else {
        None
    };
    print(
        &Answer {
            explanation,
            kernel,
        },
        cli.output,
    )
}

fn print(answer: &Answer, output: Output) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Text => {
            write!(stdout, "{}", answer.explanation)?;
            match &answer.kernel {
                None => {}
                Some(found) if found.is_empty() => writeln!(stdout, "kernel: as desired")?,
                Some(found) => {
                    writeln!(stdout, "kernel: differs from the desired state")?;
                    for d in found {
                        writeln!(stdout, "  {d}")?;
                    }
                }
            }
        }
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, answer)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

fn from_dir(
    path: &Path,
    id: &ObjectId,
    filter: &ProxyFilter,
    settings: &Settings,
) -> anyhow::Result<Read> {
    let snapshot = dir::read(path)?;
    let admission = snapshot.service(id).map(|s| model::admit(s, filter));
    Ok(Read {
        events: snapshot.into_events(),
        admission,
        node_name: settings.hostname_override.clone(),
        from: path.display().to_string(),
    })
}

async fn from_cluster(
    id: &ObjectId,
    filter: &ProxyFilter,
    settings: &Settings,
) -> anyhow::Result<Read> {
    let node_name = match &settings.hostname_override {
        Some(h) => h.clone(),
        None => crate::run::hostname()?,
    };
    let client = crate::run::client(settings, kube_source::Otherwise::Infer).await?;
    let watch = kube_source::Watch {
        filter: filter.clone(),
        node_name: node_name.clone(),
    };
    let events = kube_source::list(client.clone(), &watch)
        .await
        .context("reading the cluster")?;
    let raw = kube_source::service_named(client, id)
        .await
        .context("reading the cluster")?;
    Ok(Read {
        events,
        admission: raw.map(|s| model::admit(&s, filter)),
        node_name: Some(node_name),
        from: "the cluster".to_owned(),
    })
}

//! `--names cluster`: the API server, listed once (no watch), with the
//! daemon's own client (`model::source::kube`: kube, tokio, rustls). Built
//! with the `cluster` cargo feature (on by default).

use std::path::Path;
use std::time::Duration;

use model::source::kube as kube_source;
use model::{ProxyFilter, SourceEvent};

/// How long `--names cluster` waits for a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the API server could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    /// No usable cluster configuration.
    #[error("--names cluster: {}", with_causes(.0))]
    Config(kube_source::ClientError),
    /// The API server did not answer or refused.
    #[error("--names cluster ({server}): {}", with_causes(.source))]
    List {
        /// The API server's URL.
        server: String,
        /// The problem.
        source: kube_source::ListError,
    },
    /// The node's name, which picks its Node object.
    #[error("--names cluster: reading this node's name: {0}")]
    NodeName(std::io::Error),
    /// The async runtime for the API client.
    #[error("--names cluster: starting the API client's runtime: {0}")]
    Runtime(std::io::Error),
}

/// An error and its causes on one line, each cause said once: the API
/// client's errors keep the useful part (`Connection refused`) in a cause.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// Lists the cluster's objects for this node, with this node's name.
///
/// # Errors
/// [`ClusterError`] naming the API server when it is known.
pub(crate) fn list(kubeconfig: Option<&Path>) -> Result<(Vec<SourceEvent>, String), ClusterError> {
    let node_name = model::node::local_name().map_err(ClusterError::NodeName)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::Runtime)?;
    let events = runtime.block_on(list_async(kubeconfig, &node_name))?;
    Ok((events, node_name))
}

async fn list_async(
    kubeconfig: Option<&Path>,
    node_name: &str,
) -> Result<Vec<SourceEvent>, ClusterError> {
    let mut config = kube_source::config(kubeconfig, None, kube_source::Otherwise::Infer)
        .await
        .map_err(ClusterError::Config)?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| ClusterError::Config(kube_source::ClientError::Build(e)))?;
    let watch = kube_source::Watch {
        filter: ProxyFilter::default(),
        node_name: node_name.to_owned(),
    };
    kube_source::list(client, &watch)
        .await
        .map_err(|source| ClusterError::List { server, source })
}

//! Where `--names` reads the cluster from: a directory in the daemon's
//! `--from-dir` format, or the API server, listed once (no watch).

use std::path::PathBuf;
use std::time::Duration;

use model::source::{dir, kube as kube_source};
use model::{Model, ProxyFilter, SourceEvent};

use super::Names;

/// What `--names` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--names DIR`: the YAML/JSON files under DIR.
    Dir(PathBuf),
    /// `--names cluster [--kubeconfig FILE]`: the API server.
    Cluster {
        /// `--kubeconfig`; else in-cluster, `$KUBECONFIG` or `~/.kube/config`.
        kubeconfig: Option<PathBuf>,
    },
}

/// How long `--names cluster` waits for a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the names could not be read; each names the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The directory or one of its files.
    #[error("--names {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The problem.
        source: dir::DirError,
    },
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

/// Reads the objects and computes the names.
///
/// # Errors
/// [`LoadError`] naming the source.
pub(crate) fn load(source: &Source) -> Result<Names, LoadError> {
    match source {
        Source::Dir(path) => {
            let snapshot = dir::read(path).map_err(|source| LoadError::Dir {
                dir: path.clone(),
                source,
            })?;
            // As the daemon does without --hostname-override: the Node in the directory.
            Ok(names(snapshot.into_events(), None))
        }
        Source::Cluster { kubeconfig } => {
            let node_name = model::node::local_name().map_err(LoadError::NodeName)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(LoadError::Runtime)?;
            let events = runtime.block_on(list(kubeconfig.as_deref(), &node_name))?;
            Ok(names(events, Some(node_name)))
        }
    }
}

async fn list(
    kubeconfig: Option<&std::path::Path>,
    node_name: &str,
) -> Result<Vec<SourceEvent>, LoadError> {
    let mut config = kube_source::config(kubeconfig)
        .await
        .map_err(LoadError::Config)?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| LoadError::Config(kube_source::ClientError::Build(e)))?;
    let watch = kube_source::Watch {
        filter: ProxyFilter::default(),
        node_name: node_name.to_owned(),
    };
    kube_source::list(client, &watch)
        .await
        .map_err(|source| LoadError::List { server, source })
}

/// The names for what a source listed. Objects the daemon would skip as
/// invalid are skipped here too, silently: they have no name.
fn names(events: Vec<SourceEvent>, node_name: Option<String>) -> Names {
    let mut model = Model::new(ProxyFilter::default(), node_name.clone());
    for event in events {
        model.apply(event);
    }
    Names::new(&model, node_name.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &Source) -> String {
        load(source).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn an_unreadable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(
            error(&Source::Dir(missing.clone())),
            format!(
                "--names {0}: reading {0}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        std::fs::write(dir.path().join("bad.yaml"), "kind: Service\nmetadata: [\n").unwrap();
        let message = error(&Source::Dir(dir.path().to_owned()));
        let prefix = format!("--names {0}: {0}/bad.yaml:", dir.path().display());
        assert!(message.starts_with(&prefix), "{message}");
    }

    #[test]
    fn a_missing_kubeconfig_is_named() {
        let message = error(&Source::Cluster {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
        });
        assert!(
            message.starts_with("--names cluster: reading kubeconfig /nonexistent/kubeconfig: "),
            "{message}"
        );
    }

    #[test]
    fn an_unreachable_api_server_is_named() {
        // Nothing listens on port 1 of the loopback address: refused at once.
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        let message = error(&Source::Cluster {
            kubeconfig: Some(kubeconfig),
        });
        assert!(
            message.starts_with("--names cluster (http://127.0.0.1:1/): listing Services: "),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}

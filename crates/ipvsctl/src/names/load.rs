//! Where `--names` reads the cluster from: a directory in the daemon's
//! `--from-dir` format, or the API server, listed once (no watch).

use std::path::PathBuf;

use model::source::dir;
use model::{Model, ProxyFilter, SourceEvent};

use super::Names;
#[cfg(feature = "cluster")]
pub(crate) use super::cluster::ClusterError;

/// What `--names` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--names DIR`: the YAML/JSON files under DIR.
    Dir(PathBuf),
    /// `--names cluster [--kubeconfig FILE]`: the API server.
    Cluster {
        /// `--kubeconfig`; else `$KUBECONFIG`, `~/.kube/config` or in-cluster.
        kubeconfig: Option<PathBuf>,
    },
}

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
    /// The API server (see [`ClusterError`]).
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// `--names cluster` in a build without the `cluster` feature.
    #[cfg(not(feature = "cluster"))]
    #[error(
        "--names cluster: this ipvsctl-rs is built without the API client (cargo feature `cluster`)"
    )]
    NoCluster,
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
        #[cfg(feature = "cluster")]
        Source::Cluster { kubeconfig } => {
            let (events, node_name) = super::cluster::list(kubeconfig.as_deref())?;
            Ok(names(events, Some(node_name)))
        }
        #[cfg(not(feature = "cluster"))]
        Source::Cluster { .. } => Err(LoadError::NoCluster),
    }
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

    #[cfg(feature = "cluster")]
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

    #[cfg(feature = "cluster")]
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

//! The Kubernetes source: kube-runtime watchers on Services, EndpointSlices and this node's
//! Node. The watcher does the listing, resourceVersion bookkeeping, bookmarks and relisting
//! after `410 Gone`; this module retries it with kube-proxy's informer backoff, gives every
//! request a timeout, and turns its events into [`SourceEvent`]s.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{self as core, ObjectReference};
use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::ListParams;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::labels::ProxyFilter;
use crate::warning::bounded;
use crate::{Kind, Object, ObjectId, SourceEvent, Warning};

/// What to watch.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Label filter for Services and EndpointSlices.
    pub filter: ProxyFilter,
    /// This node's name: only that Node is watched.
    pub node_name: String,
}

/// Why no API client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The problem.
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig file does not describe a usable cluster.
    #[error("using kubeconfig {path}: {source}")]
    Use {
        /// The file.
        path: PathBuf,
        /// The problem.
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given, and the process does not run in a Pod with a
    /// ServiceAccount ([`Otherwise::InCluster`]).
    #[error(
        "no kubeconfig given and no in-cluster configuration (KUBERNETES_SERVICE_HOST, \
         KUBERNETES_SERVICE_PORT, /var/run/secrets/kubernetes.io/serviceaccount/): {0}"
    )]
    NotInCluster(kube::config::InClusterError),
    /// `--master` is not a URL.
    #[error("--master {url}: {source}")]
    Master {
        /// What was given.
        url: String,
        /// Why it is not a URL.
        source: http::uri::InvalidUri,
    },
    /// No kubeconfig was given and none was found ([`Otherwise::Infer`]).
    #[error("no cluster configuration ($KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    NoConfiguration(kube::config::InferConfigError),
    /// The configuration was found but the client could not be built from it.
    #[error("building the API client: {0}")]
    Build(kube::Error),
}

/// How long a request may wait for the API server's next bytes before it fails and is retried
/// (a hung list, a silent connection). The API server sends a live watch a bookmark about
/// once a minute, so a watch that is merely quiet never waits this long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting to the API server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API server's configuration comes from when no kubeconfig file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Otherwise {
    /// The Pod's ServiceAccount and nothing else, as kube-proxy (`rest.InClusterConfig`
    /// when neither `--kubeconfig` nor `--master` is given): the daemon, which must not
    /// pick up whatever `$KUBECONFIG` or `~/.kube/config` the node has.
    InCluster,
    /// `$KUBECONFIG`, else `~/.kube/config`, else in-cluster (kube-rs' `Config::infer`, as
    /// kubectl): for commands an operator runs by hand.
    Infer,
}

/// The API server configuration from `kubeconfig`, its server replaced by `master` (a URL)
/// when given, as kube-proxy's `--kubeconfig` and `--master`: `master` alone is that
/// server without credentials; neither, as `otherwise` says. With [`READ_TIMEOUT`] and
/// [`CONNECT_TIMEOUT`].
///
/// # Errors
/// [`ClientError`] naming the file, the URL or the missing configuration.
pub async fn config(
    kubeconfig: Option<&Path>,
    master: Option<&str>,
    otherwise: Otherwise,
) -> Result<kube::Config, ClientError> {
    let master = master
        .map(|url| {
            url.parse::<http::Uri>()
                .map_err(|source| ClientError::Master {
                    url: url.to_owned(),
                    source,
                })
        })
        .transpose()?;
    let mut config = match (kubeconfig, master) {
        (None, Some(server)) => kube::Config::new(server),
        (_, master) => {
            let mut config = located_config(kubeconfig, otherwise).await?;
            if let Some(server) = master {
                config.cluster_url = server;
            }
            config
        }
    };
    config.read_timeout = Some(READ_TIMEOUT);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // Named once here: the failures logged later (an unknown CA, 401) are about this server.
    match kubeconfig {
        Some(path) => {
            tracing::info!(server = %config.cluster_url, kubeconfig = %path.display(), "API server");
        }
        None => tracing::info!(server = %config.cluster_url, "API server"),
    }
    Ok(config)
}

async fn located_config(
    kubeconfig: Option<&Path>,
    otherwise: Otherwise,
) -> Result<kube::Config, ClientError> {
    match kubeconfig {
        Some(path) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
                    path: path.to_owned(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Use {
                    path: path.to_owned(),
                    source,
                })
        }
        None => match otherwise {
            Otherwise::InCluster => kube::Config::incluster().map_err(ClientError::NotInCluster),
            Otherwise::Infer => kube::Config::infer()
                .await
                .map_err(ClientError::NoConfiguration),
        },
    }
}

/// An API client for [`config`]`(kubeconfig, master, otherwise)`.
///
/// # Errors
/// [`ClientError`] naming the file, the URL or the missing configuration.
pub async fn client(
    kubeconfig: Option<&Path>,
    master: Option<&str>,
    otherwise: Otherwise,
) -> Result<Client, ClientError> {
    Client::try_from(config(kubeconfig, master, otherwise).await?).map_err(ClientError::Build)
}

/// The server-side selectors for one kind: a label selector and a field selector.
fn selectors(kind: Kind, watch: &Watch) -> (Option<String>, Option<String>) {
    match kind {
        Kind::Service | Kind::EndpointSlice => (Some(watch.filter.label_selector()), None),
        Kind::Node => (None, Some(format!("metadata.name={}", watch.node_name))),
    }
}

fn watcher_config(kind: Kind, watch: &Watch) -> watcher::Config {
    let (labels, fields) = selectors(kind, watch);
    let mut config = watcher::Config::default();
    if let Some(l) = labels {
        config = config.labels(&l);
    }
    if let Some(f) = fields {
        config = config.fields(&f);
    }
    config
}

/// The merged stream of events from the three watchers. Watch errors are logged and retried
/// with backoff by kube-runtime; the stream never ends on its own.
pub fn events(client: Client, watch: &Watch) -> BoxStream<'static, SourceEvent> {
    let services = kind_events::<core::Service>(
        Api::all(client.clone()),
        watcher_config(Kind::Service, watch),
        Kind::Service,
        |s| Object::Service(Box::new(s)),
    );
    let slices = kind_events::<discovery::EndpointSlice>(
        Api::all(client.clone()),
        watcher_config(Kind::EndpointSlice, watch),
        Kind::EndpointSlice,
        |s| Object::EndpointSlice(Box::new(s)),
    );
    let node = kind_events::<core::Node>(
        Api::all(client),
        watcher_config(Kind::Node, watch),
        Kind::Node,
        |n| Object::Node(Box::new(n)),
    );
    futures::stream::select_all([services, slices, node]).boxed()
}

/// A list request the API server refused or did not answer.
#[derive(Debug, thiserror::Error)]
#[error("listing {kind}s: {source}")]
pub struct ListError {
    /// What was being listed.
    pub kind: Kind,
    /// The client's error.
    pub source: kube::Error,
}

/// Lists the three kinds once, with the same selectors as [`events`], without watching:
/// one [`SourceEvent::Listed`] per kind, for a one-shot reader (`ipvsctl-rs --names`).
///
/// # Errors
/// [`ListError`] for the first kind that cannot be listed.
pub async fn list(client: Client, watch: &Watch) -> Result<Vec<SourceEvent>, ListError> {
    Ok(vec![
        list_kind::<core::Service>(Api::all(client.clone()), watch, Kind::Service, |s| {
            Object::Service(Box::new(s))
        })
        .await?,
        list_kind::<discovery::EndpointSlice>(
            Api::all(client.clone()),
            watch,
            Kind::EndpointSlice,
            |s| Object::EndpointSlice(Box::new(s)),
        )
        .await?,
        list_kind::<core::Node>(Api::all(client), watch, Kind::Node, |n| {
            Object::Node(Box::new(n))
        })
        .await?,
    ])
}

/// The Service `id` whatever its labels (the watch's label selector leaves out other
/// proxies' and headless ones, which `explain` must still find): a list by the
/// `metadata.name` field selector, as the shipped RBAC grants list but not get.
///
/// # Errors
/// [`ListError`] when the API server refuses or does not answer.
pub async fn service_named(
    client: Client,
    id: &ObjectId,
) -> Result<Option<core::Service>, ListError> {
    let params = ListParams::default().fields(&format!("metadata.name={}", id.name));
    let listed = Api::<core::Service>::all(client)
        .list(&params)
        .await
        .map_err(|source| ListError {
            kind: Kind::Service,
            source,
        })?;
    Ok(listed
        .items
        .into_iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(&*id.namespace)))
}

async fn list_kind<K>(
    api: Api<K>,
    watch: &Watch,
    kind: Kind,
    wrap: fn(K) -> Object,
) -> Result<SourceEvent, ListError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let (labels, fields) = selectors(kind, watch);
    let mut params = ListParams::default();
    if let Some(l) = labels {
        params = params.labels(&l);
    }
    if let Some(f) = fields {
        params = params.fields(&f);
    }
    let listed = api
        .list(&params)
        .await
        .map_err(|source| ListError { kind, source })?;
    Ok(SourceEvent::Listed(
        kind,
        listed.items.into_iter().map(wrap).collect(),
    ))
}

fn kind_events<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: Kind,
    wrap: fn(K) -> Object,
) -> BoxStream<'static, SourceEvent>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    retried(watcher::watcher(api, config.any_semantic()), kind)
        .filter_map(move |item| std::future::ready(event(item, kind, wrap)))
        .boxed()
}

/// Waits after each error of `watch` as kube-proxy's informers do (0.8 s, doubling with jitter
/// up to 30 s), logging one line per failed attempt. Only progress resets the wait: a listing
/// finished or an object event. kube-runtime's `default_backoff` also resets on the `Init`
/// the watcher emits before every list attempt, so against a failing API server it never grew.
fn retried<K>(
    watch: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    kind: Kind,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Send + 'static,
{
    watch.scan(DefaultBackoff::default(), move |backoff, item| {
        let wait = match &item {
            Err(e) => {
                let wait = backoff.next().unwrap_or(MAX_BACKOFF);
                tracing::warn!(%kind, error = %chain(e), retry_in = ?wait, "watch failed; retrying");
                Some(wait)
            }
            Ok(Event::Init) => None,
            Ok(_) => {
                backoff.reset();
                None
            }
        };
        async move {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            Some(item)
        }
    })
}

/// `error` and its causes, `: `-separated, each once: kube-rs' errors keep the reason (a
/// certificate from an unknown issuer, a refused connection) in their sources.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = e.source();
    }
    text
}

/// The longest wait between two attempts (kube-proxy's informers: 30 s).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one watcher event means for the model. A (re)list is passed on object by object,
/// between `Relisting` and `Relisted`, never held whole: at 10,000 Services it would be
/// every raw EndpointSlice at once.
fn event<K>(
    item: Result<Event<K>, watcher::Error>,
    kind: Kind,
    wrap: fn(K) -> Object,
) -> Option<SourceEvent> {
    match item {
        // Logged where it is retried.
        Err(_) => None,
        Ok(Event::Init) => Some(SourceEvent::Relisting(kind)),
        Ok(Event::InitApply(obj) | Event::Apply(obj)) => Some(SourceEvent::Applied(wrap(obj))),
        Ok(Event::InitDone) => Some(SourceEvent::Relisted(kind)),
        Ok(Event::Delete(obj)) => Some(SourceEvent::Deleted(wrap(obj))),
    }
}

/// The first wait before an Event is sent again; it doubles up to [`MAX_BACKOFF`].
const EVENT_RETRY_FIRST: Duration = Duration::from_secs(1);

/// Whether a request may succeed later: the API server could not be reached, did not answer
/// in time, or answered 429 or 5xx. Any other refusal (403, 422) is final.
fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// Publishes the model's [`Warning`]s as Kubernetes Events on the objects they are about
/// (`events.k8s.io/v1`, reporting controller `kube-ipvs-proxy`, instance = node name), so a
/// skipped Service shows up in `kubectl describe`.
pub struct EventReporter {
    recorder: Recorder,
    node_name: String,
}

impl EventReporter {
    /// A reporter for this node.
    pub fn new(client: Client, node_name: &str) -> EventReporter {
        let reporter = Reporter {
            controller: "kube-ipvs-proxy".into(),
            instance: Some(node_name.to_owned()),
        };
        EventReporter {
            recorder: Recorder::new(client, reporter),
            node_name: node_name.to_owned(),
        }
    }

    /// Publishes a Warning Event about this node itself (for example the proxy mode falling
    /// back), with `reason` (CamelCase) and a human-readable `note`.
    ///
    /// # Errors
    /// The API server's refusal (missing RBAC `create` on `events.events.k8s.io`).
    pub async fn node_warning(&self, reason: &str, note: &str) -> Result<(), kube::Error> {
        let node = ObjectId::new("", self.node_name.as_str());
        self.warning(Kind::Node, &node, reason, "Proxy", note).await
    }

    /// Publishes kube-proxy's `Starting` Event on this node (type Normal, action
    /// `StartKubeProxy`, as its `birthCry`), retried as [`EventReporter::warning`] is.
    ///
    /// # Errors
    /// The API server's final refusal.
    pub async fn node_starting(&self) -> Result<(), kube::Error> {
        let node = ObjectId::new("", self.node_name.as_str());
        let event = KubeEvent {
            type_: EventType::Normal,
            reason: "Starting".into(),
            note: None,
            action: "StartKubeProxy".into(),
            secondary: None,
        };
        self.send(Kind::Node, &node, &event).await
    }

    /// Publishes a Warning Event on `object` (of `kind`), with `reason` (CamelCase), the
    /// `action` that failed (CamelCase, e.g. `Listen`) and a human-readable `note`. While the
    /// API server cannot take it (unreachable, 429, 5xx) it is sent again, after 1 s doubling
    /// up to 30 s, until it is delivered: run it on a task of its own.
    ///
    /// # Errors
    /// The API server's final refusal (e.g. 403 without RBAC `create` on
    /// `events.events.k8s.io`).
    pub async fn warning(
        &self,
        kind: Kind,
        object: &ObjectId,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        self.send(kind, object, &warning_event(reason, action, note))
            .await
    }

    /// Sends `event` about `object` until it is delivered or finally refused.
    async fn send(
        &self,
        kind: Kind,
        object: &ObjectId,
        event: &KubeEvent,
    ) -> Result<(), kube::Error> {
        let (api_version, kind) = match kind {
            Kind::Service => ("v1", "Service"),
            Kind::EndpointSlice => ("discovery.k8s.io/v1", "EndpointSlice"),
            Kind::Node => ("v1", "Node"),
        };
        let reference = ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            namespace: Some(object.namespace.to_string()).filter(|n| !n.is_empty()),
            name: Some(object.name.to_string()),
            ..ObjectReference::default()
        };
        let mut wait = EVENT_RETRY_FIRST;
        loop {
            match self.recorder.publish(event, &reference).await {
                Err(e) if transient(&e) => {
                    if wait == EVENT_RETRY_FIRST {
                        tracing::warn!(reason = %event.reason, object = %object, error = %chain(&e),
                            "event not delivered; retrying until it is");
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                result => return result,
            }
        }
    }

    /// Publishes one warning (its note cut to [`MAX_NOTE`] bytes).
    ///
    /// # Errors
    /// The API server's refusal (missing RBAC `create` on `events.events.k8s.io`).
    pub async fn publish(&self, warning: &Warning) -> Result<(), kube::Error> {
        let reason = if warning.consequence.rejects() {
            "InvalidObject"
        } else {
            "InvalidField"
        };
        let note = warning.to_string();
        self.warning(warning.kind, &warning.object, reason, "Proxy", &note)
            .await
    }
}

/// The API server's limit on an Event's note, in bytes: a longer note is refused.
pub const MAX_NOTE: usize = 1024;

/// A Warning Event with `reason`, `action` and `note`, the note cut to [`MAX_NOTE`] bytes.
fn warning_event(reason: &str, action: &str, note: &str) -> KubeEvent {
    KubeEvent {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(bounded(note.to_owned(), MAX_NOTE)),
        action: action.into(),
        secondary: None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Wrapped {
        text: &'static str,
        #[source]
        source: Option<Box<Wrapped>>,
    }

    #[test]
    fn an_error_is_logged_with_each_of_its_causes_once() {
        let leaf = Wrapped {
            text: "invalid peer certificate: UnknownIssuer",
            source: None,
        };
        let middle = Wrapped {
            text: "client error (Connect)",
            source: Some(Box::new(leaf)),
        };
        let top = Wrapped {
            text: "HyperError: client error (Connect)",
            source: Some(Box::new(middle)),
        };
        assert_eq!(
            chain(&top),
            "HyperError: client error (Connect): invalid peer certificate: UnknownIssuer"
        );
    }

    fn svc(name: &str) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("d".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn an_event_note_stays_within_the_api_servers_limit() {
        let note = "x".repeat(MAX_NOTE + 1);
        let event = warning_event("InvalidField", "Proxy", &note);
        let kept = event.note.expect("a note");
        assert!(kept.len() <= MAX_NOTE, "{}", kept.len());
        assert!(kept.ends_with("… (1025 bytes)"), "{kept}");
        let short = warning_event("InvalidField", "Proxy", "short").note;
        assert_eq!(short.as_deref(), Some("short"));
    }

    #[test]
    fn a_relist_is_passed_on_object_by_object_between_its_brackets() {
        let wrap: fn(Service) -> Object = |s| Object::Service(Box::new(s));
        let mapped = |item| event(Ok(item), Kind::Service, wrap);
        assert_eq!(
            mapped(Event::Init),
            Some(SourceEvent::Relisting(Kind::Service))
        );
        assert_eq!(
            mapped(Event::InitApply(svc("a"))),
            Some(SourceEvent::Applied(wrap(svc("a"))))
        );
        assert_eq!(
            mapped(Event::InitDone),
            Some(SourceEvent::Relisted(Kind::Service))
        );
        assert_eq!(
            mapped(Event::Apply(svc("b"))),
            Some(SourceEvent::Applied(wrap(svc("b"))))
        );
        assert_eq!(
            mapped(Event::Delete(svc("b"))),
            Some(SourceEvent::Deleted(wrap(svc("b"))))
        );
    }
}

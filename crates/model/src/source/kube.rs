//! The Kubernetes source: kube-runtime watchers on Services, EndpointSlices and this node's
//! Node. The watcher does the listing, resourceVersion bookkeeping, bookmarks, relisting after
//! `410 Gone` and backoff; this module only turns its events into [`SourceEvent`]s.

use std::fmt::Debug;

use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{self as core, ObjectReference};
use k8s_openapi::api::discovery::v1 as discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::labels::ProxyFilter;
use crate::{Kind, Object, SourceEvent, Warning};

/// What to watch.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Label filter for Services and EndpointSlices.
    pub filter: ProxyFilter,
    /// This node's name: only that Node is watched.
    pub node_name: String,
}

/// The merged stream of events from the three watchers. Watch errors are logged and retried
/// with backoff by kube-runtime; the stream never ends on its own.
pub fn events(client: Client, watch: &Watch) -> BoxStream<'static, SourceEvent> {
    let selector = watch.filter.label_selector();
    let services = kind_events::<core::Service>(
        Api::all(client.clone()),
        watcher::Config::default().labels(&selector),
        Kind::Service,
        |s| Object::Service(Box::new(s)),
    );
    let slices = kind_events::<discovery::EndpointSlice>(
        Api::all(client.clone()),
        watcher::Config::default().labels(&selector),
        Kind::EndpointSlice,
        |s| Object::EndpointSlice(Box::new(s)),
    );
    let node = kind_events::<core::Node>(
        Api::all(client),
        watcher::Config::default().fields(&format!("metadata.name={}", watch.node_name)),
        Kind::Node,
        |n| Object::Node(Box::new(n)),
    );
    futures::stream::select_all([services, slices, node]).boxed()
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
    let mut listing: Option<Vec<Object>> = None;
    watcher::watcher(api, config.any_semantic())
        .default_backoff()
        .filter_map(move |item| {
            let out = match item {
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "watch failed; retrying");
                    None
                }
                Ok(Event::Init) => {
                    listing = Some(Vec::new());
                    None
                }
                Ok(Event::InitApply(obj)) => {
                    listing.get_or_insert_with(Vec::new).push(wrap(obj));
                    None
                }
                Ok(Event::InitDone) => Some(SourceEvent::Listed(
                    kind,
                    listing.take().unwrap_or_default(),
                )),
                Ok(Event::Apply(obj)) => Some(SourceEvent::Applied(wrap(obj))),
                Ok(Event::Delete(obj)) => Some(SourceEvent::Deleted(wrap(obj))),
            };
            std::future::ready(out)
        })
        .boxed()
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
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.node_name.clone()),
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Proxy".into(),
            secondary: None,
        };
        self.recorder.publish(&event, &reference).await
    }

    /// Publishes one warning.
    ///
    /// # Errors
    /// The API server's refusal (missing RBAC `create` on `events.events.k8s.io`).
    pub async fn publish(&self, warning: &Warning) -> Result<(), kube::Error> {
        let (api_version, kind) = match warning.kind {
            Kind::Service => ("v1", "Service"),
            Kind::EndpointSlice => ("discovery.k8s.io/v1", "EndpointSlice"),
            Kind::Node => ("v1", "Node"),
        };
        let reference = ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            namespace: Some(warning.object.namespace.clone()).filter(|n| !n.is_empty()),
            name: Some(warning.object.name.clone()),
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: if warning.skipped {
                "InvalidObject"
            } else {
                "InvalidField"
            }
            .into(),
            note: Some(warning.to_string()),
            action: "Proxy".into(),
            secondary: None,
        };
        self.recorder.publish(&event, &reference).await
    }
}

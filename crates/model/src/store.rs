//! The model: every valid Service, EndpointSlice and this node, kept up to date by
//! [`SourceEvent`]s, with a record of which Services changed since the last look.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::labels::ProxyFilter;
use crate::pending::{self, Pending, Tracker};
use crate::warning::{Consequence, Invalid, Warning};
use crate::{EndpointSlice, IdSet, Kind, Node, Object, ObjectId, Service, SourceEvent};

/// What changed in the model since [`Model::take_changes`] was last called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Services whose spec or endpoints changed, appeared or disappeared.
    pub services: BTreeSet<ObjectId>,
    /// Whether this node's name, zone or addresses changed (every Service depends on them).
    pub node: bool,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && !self.node
    }
}

/// The in-memory model of Services, EndpointSlices and this node.
#[derive(Debug, Default)]
pub struct Model {
    filter: ProxyFilter,
    node_name: Option<String>,
    services: BTreeMap<ObjectId, Arc<Service>>,
    slices: HashMap<ObjectId, Arc<EndpointSlice>>,
    slices_by_service: HashMap<ObjectId, IdSet>,
    node: Option<Node>,
    listed: BTreeSet<Kind>,
    /// The kinds being relisted, with the objects applied since the listing began.
    relisting: BTreeMap<Kind, BTreeSet<ObjectId>>,
    /// One copy of each node name endpoints name, shared by them.
    node_names: HashSet<Arc<str>>,
    /// Whether endpoints keep no Pod ([`Model::without_pods`]).
    forget_pods: bool,
    changes: Changes,
    /// The changes no sync has taken yet, for kube-proxy's metrics.
    tracker: Tracker,
}

impl Model {
    /// An empty model that keeps objects `filter` accepts, and the Node named `node_name`
    /// (any Node, when `None`: a directory source that names its node by containing it).
    pub fn new(filter: ProxyFilter, node_name: Option<String>) -> Model {
        Model {
            filter,
            node_name,
            ..Model::default()
        }
    }

    /// The same model, keeping no endpoint's Pod ([`crate::Endpoint::pod`]): for the
    /// daemon, which decides nothing by it. In a real cluster every endpoint names its Pod,
    /// about 57 bytes each: 5.4 MiB at 100,000 endpoints (`bench_memory`).
    pub fn without_pods(mut self) -> Model {
        self.forget_pods = true;
        self
    }

    /// Applies one event from a source; returns the problems found in the objects.
    pub fn apply(&mut self, event: SourceEvent) -> Vec<Warning> {
        let mut warnings = Vec::new();
        match event {
            SourceEvent::Applied(object) => self.applied(object, &mut warnings),
            SourceEvent::Deleted(object) => self.remove(object.kind(), &object.id()),
            SourceEvent::Relisting(kind) => {
                self.relisting.insert(kind, BTreeSet::new());
            }
            SourceEvent::Relisted(kind) => self.relisted(kind),
            SourceEvent::Undecodable(mut warning) => {
                if let Some(seen) = self.relisting.get_mut(&warning.kind) {
                    seen.insert(warning.object.clone());
                }
                warning.consequence = self.rejection(warning.kind, &warning.object);
                warnings.push(warning);
            }
            SourceEvent::Listed(kind, objects) => {
                self.relisting.insert(kind, BTreeSet::new());
                for object in objects.into_iter().filter(|o| o.kind() == kind) {
                    self.applied(object, &mut warnings);
                }
                self.relisted(kind);
            }
        }
        warnings
    }

    /// One object created, modified or listed. In a listing its id counts as seen even
    /// when the object is invalid.
    fn applied(&mut self, object: Object, warnings: &mut Vec<Warning>) {
        if let Some(seen) = self.relisting.get_mut(&object.kind()) {
            seen.insert(object.id());
        }
        self.upsert(object, warnings);
    }

    /// The listing of `kind` is complete: what it did not show is gone. Without a listing
    /// begun (a source that stopped mid-listing and started another), nothing is removed.
    fn relisted(&mut self, kind: Kind) {
        let Some(seen) = self.relisting.remove(&kind) else {
            return;
        };
        for stale in self.ids(kind).into_iter().filter(|id| !seen.contains(id)) {
            self.remove(kind, &stale);
        }
        self.listed.insert(kind);
    }

    /// Whether a complete listing of all three kinds has arrived; nothing may be programmed
    /// before (an empty model would delete every existing virtual server).
    pub fn is_synced(&self) -> bool {
        Kind::ALL.iter().all(|k| self.listed.contains(k))
    }

    /// The record of changes, left in place.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Returns and clears the record of changes.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The changes since [`Model::take_pending`] was last called (since the model was
    /// created, before): what kube-proxy's metrics call pending.
    pub fn pending(&self) -> &Pending {
        self.tracker.pending()
    }

    /// Returns and clears the pending changes: a sync takes them when it begins.
    pub fn take_pending(&mut self) -> Pending {
        self.tracker.take()
    }

    /// Every Service, by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// One Service.
    pub fn service(&self, id: &ObjectId) -> Option<&Arc<Service>> {
        self.services.get(id)
    }

    /// The EndpointSlices of a Service, by slice name.
    pub fn slices_of(&self, service: &ObjectId) -> impl Iterator<Item = &Arc<EndpointSlice>> {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|id| self.slices.get(id))
    }

    /// This node, once known.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// Number of Services and EndpointSlices held.
    pub fn len(&self) -> (usize, usize) {
        (self.services.len(), self.slices.len())
    }

    /// Whether the model holds no Service and no EndpointSlice.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.slices.is_empty()
    }

    fn ids(&self, kind: Kind) -> Vec<ObjectId> {
        match kind {
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::EndpointSlice => self.slices.keys().cloned().collect(),
            Kind::Node => self
                .node
                .iter()
                .map(|n| ObjectId::new("", n.name.clone()))
                .collect(),
        }
    }

    fn upsert(&mut self, object: Object, warnings: &mut Vec<Warning>) {
        let id = object.id();
        let kind = object.kind();
        let mut soft = Vec::new();
        let result = match &object {
            Object::Service(svc) if self.filter.accepts(svc.metadata.labels.as_ref()) => {
                Service::from_kubernetes(svc, &mut soft).map(|s| s.map(Validated::Service))
            }
            Object::EndpointSlice(s) if self.filter.accepts(s.metadata.labels.as_ref()) => {
                EndpointSlice::from_kubernetes(s).map(|s| s.map(Validated::Slice))
            }
            Object::Node(n) => {
                if self
                    .node_name
                    .as_ref()
                    .is_some_and(|ours| Some(ours) != n.metadata.name.as_ref())
                {
                    return;
                }
                Node::from_kubernetes(n).map(|n| Some(Validated::Node(n)))
            }
            _ => Ok(None),
        };
        let report = |problem: Invalid, consequence: Consequence| Warning {
            kind,
            object: id.clone(),
            problem,
            consequence,
        };
        warnings.extend(
            soft.into_iter()
                .map(|p| report(p, Consequence::DefaultUsed)),
        );
        match result {
            Ok(Some(Validated::Service(svc))) => self.put_service(svc),
            Ok(Some(Validated::Slice(slice))) => {
                let trigger = match &object {
                    Object::EndpointSlice(s) => {
                        pending::trigger_time(s.metadata.annotations.as_ref())
                    }
                    _ => None,
                };
                self.put_slice(slice, trigger)
            }
            Ok(Some(Validated::Node(node))) => {
                if self.node.as_ref() != Some(&node) {
                    self.node = Some(node);
                    self.changes.node = true;
                }
            }
            Ok(None) => self.remove(kind, &id),
            Err(problem) => warnings.push(report(problem, self.rejection(kind, &id))),
        }
    }

    /// What becomes of an object whose new version is rejected: an invalid update must not
    /// take away what its last valid version programmed (the API server accepted it; only
    /// our stricter checks refuse it), so a version held stays.
    fn rejection(&self, kind: Kind, id: &ObjectId) -> Consequence {
        if self.holds(kind, id) {
            Consequence::LastValidKept
        } else {
            Consequence::Skipped
        }
    }

    /// Whether a valid version of this object is held.
    fn holds(&self, kind: Kind, id: &ObjectId) -> bool {
        match kind {
            Kind::Service => self.services.contains_key(id),
            Kind::EndpointSlice => self.slices.contains_key(id),
            Kind::Node => self.node.as_ref().is_some_and(|n| *n.name == *id.name),
        }
    }

    fn put_service(&mut self, svc: Service) {
        if self.services.get(&svc.id).is_some_and(|old| **old == svc) {
            return;
        }
        self.changes.services.insert(svc.id.clone());
        self.tracker.service(&svc.id);
        self.services.insert(svc.id.clone(), Arc::new(svc));
    }

    fn put_slice(&mut self, mut slice: EndpointSlice, trigger: Option<std::time::SystemTime>) {
        for ep in &mut slice.endpoints {
            if self.forget_pods {
                ep.pod = None;
            }
            if let Some(name) = &ep.node_name {
                let shared = match self.node_names.get(name) {
                    Some(shared) => Arc::clone(shared),
                    None => {
                        self.node_names.insert(Arc::clone(name));
                        Arc::clone(name)
                    }
                };
                ep.node_name = Some(shared);
            }
        }
        if let Some(old) = self.slices.get(&slice.id) {
            if **old == slice {
                return;
            }
            let (old_id, old_service) = (old.id.clone(), old.service.clone());
            self.unindex(&old_id, &old_service);
        }
        self.changes.services.insert(slice.service.clone());
        self.tracker
            .slice_updated(&slice.service, slice.family, trigger);
        self.slices_by_service
            .entry(slice.service.clone())
            .or_default()
            .insert(slice.id.clone());
        self.slices.insert(slice.id.clone(), Arc::new(slice));
    }

    fn unindex(&mut self, slice: &ObjectId, service: &ObjectId) {
        self.changes.services.insert(service.clone());
        if let Some(set) = self.slices_by_service.get_mut(service) {
            set.remove(slice);
            if set.is_empty() {
                self.slices_by_service.remove(service);
            }
        }
    }

    fn remove(&mut self, kind: Kind, id: &ObjectId) {
        match kind {
            Kind::Service => {
                if self.services.remove(id).is_some() {
                    self.changes.services.insert(id.clone());
                    self.tracker.service(id);
                }
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.slices.remove(id) {
                    self.unindex(id, &old.service);
                    self.tracker.slice_deleted(&old.service, old.family);
                }
            }
            Kind::Node => {
                if self.holds(Kind::Node, id) {
                    self.node = None;
                    self.changes.node = true;
                }
            }
        }
    }
}

enum Validated {
    Service(Service),
    Slice(EndpointSlice),
    Node(Node),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, ip: &str) -> Object {
        Object::Service(Box::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"clusterIP": ip, "ports": [{"port": 80}]},
            }))
            .expect("service"),
        ))
    }

    fn slice(name: &str, service: &str) -> Object {
        Object::EndpointSlice(Box::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "d",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.1"],
                               "targetRef": {"kind": "Pod", "name": "web-1"}}],
            }))
            .expect("slice"),
        ))
    }

    #[test]
    fn a_model_without_pods_keeps_the_endpoints_but_not_their_pods() {
        let pod_of = |m: &Model| {
            let slices: Vec<_> = m.slices_of(&id("a")).collect();
            slices[0].endpoints[0]
                .pod
                .as_ref()
                .map(|p| p.name().to_owned())
        };
        let (mut keeping, mut forgetting) = (Model::default(), Model::default().without_pods());
        for m in [&mut keeping, &mut forgetting] {
            m.apply(SourceEvent::Applied(slice("a-1", "a")));
        }
        assert_eq!(pod_of(&keeping).as_deref(), Some("web-1"));
        assert_eq!(pod_of(&forgetting), None);
        assert_eq!(forgetting.slices_of(&id("a")).count(), 1);
    }

    fn id(name: &str) -> ObjectId {
        ObjectId::new("d", name)
    }

    #[test]
    fn pending_counts_real_changes_until_a_sync_takes_them() {
        let mut m = Model::default();
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        let mut annotated = slice("a-1", "a");
        if let Object::EndpointSlice(s) = &mut annotated {
            s.metadata.annotations = Some(
                [(
                    crate::LAST_CHANGE_TRIGGER_TIME.to_owned(),
                    "2100-01-01T00:00:00Z".to_owned(),
                )]
                .into(),
            );
        }
        m.apply(SourceEvent::Applied(annotated.clone()));
        m.apply(SourceEvent::Applied(annotated));
        let pending = m.take_pending();
        assert_eq!(
            pending.services,
            BTreeSet::from([id("a")]),
            "same object twice"
        );
        assert_eq!(
            pending.endpoint_changes, 1,
            "an unchanged slice is no change"
        );
        let times: Vec<_> = pending.trigger_times.values().flatten().collect();
        assert_eq!(times.len(), 1);
        m.apply(SourceEvent::Deleted(slice("a-1", "a")));
        assert_eq!(m.pending().endpoint_changes, 1);
        assert!(m.pending().services.is_empty());
    }

    #[test]
    fn synced_only_after_all_three_kinds_are_listed() {
        let mut m = Model::default();
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.1")],
        ));
        m.apply(SourceEvent::Listed(Kind::EndpointSlice, Vec::new()));
        assert!(!m.is_synced());
        m.apply(SourceEvent::Listed(Kind::Node, Vec::new()));
        assert!(
            m.is_synced(),
            "an empty Node list counts: the node may not exist"
        );
    }

    #[test]
    fn a_relist_removes_what_is_gone_and_reports_only_real_changes() {
        let mut m = Model::default();
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.1"), service("b", "10.96.0.2")],
        ));
        let _ = m.take_changes();
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.1")],
        ));
        let changes = m.take_changes();
        assert_eq!(changes.services, BTreeSet::from([id("b")]));
        assert!(m.service(&id("b")).is_none());
    }

    #[test]
    fn a_streamed_listing_removes_what_it_did_not_show_only_once_complete() {
        let mut m = Model::default();
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.1"), service("b", "10.96.0.2")],
        ));
        let _ = m.take_changes();
        m.apply(SourceEvent::Relisting(Kind::Service));
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        m.apply(SourceEvent::Applied(service("c", "10.96.0.3")));
        // Mid-listing: `b` is still there, `c` already is.
        assert!(m.service(&id("b")).is_some());
        assert_eq!(m.take_changes().services, BTreeSet::from([id("c")]));
        m.apply(SourceEvent::Relisted(Kind::Service));
        assert!(m.service(&id("b")).is_none());
        assert_eq!(m.take_changes().services, BTreeSet::from([id("b")]));
    }

    #[test]
    fn an_interrupted_listing_removes_nothing_and_the_next_one_starts_afresh() {
        let mut m = Model::default();
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.1"), service("b", "10.96.0.2")],
        ));
        // A listing that stopped after `a` (a malformed file), then a complete one of `b`.
        m.apply(SourceEvent::Relisting(Kind::Service));
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        assert!(m.service(&id("b")).is_some());
        m.apply(SourceEvent::Relisting(Kind::Service));
        m.apply(SourceEvent::Applied(service("b", "10.96.0.2")));
        m.apply(SourceEvent::Relisted(Kind::Service));
        assert!(m.service(&id("a")).is_none(), "not in the complete listing");
        assert!(m.service(&id("b")).is_some());
        // A completion without a listing begun removes nothing.
        m.apply(SourceEvent::Relisted(Kind::Service));
        assert!(m.service(&id("b")).is_some());
    }

    #[test]
    fn synced_only_once_every_kind_s_streamed_listing_completed() {
        let mut m = Model::default();
        for kind in Kind::ALL {
            m.apply(SourceEvent::Relisting(kind));
        }
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        m.apply(SourceEvent::Relisted(Kind::Service));
        m.apply(SourceEvent::Relisted(Kind::EndpointSlice));
        assert!(!m.is_synced());
        m.apply(SourceEvent::Relisted(Kind::Node));
        assert!(m.is_synced());
        assert!(m.service(&id("a")).is_some());
    }

    #[test]
    fn a_slice_moving_to_another_service_changes_both() {
        let mut m = Model::default();
        m.apply(SourceEvent::Applied(slice("s1", "a")));
        let _ = m.take_changes();
        m.apply(SourceEvent::Applied(slice("s1", "b")));
        assert_eq!(
            m.take_changes().services,
            BTreeSet::from([id("a"), id("b")])
        );
        assert_eq!(m.slices_of(&id("a")).count(), 0);
        assert_eq!(m.slices_of(&id("b")).count(), 1);
        m.apply(SourceEvent::Deleted(slice("s1", "b")));
        assert_eq!(m.take_changes().services, BTreeSet::from([id("b")]));
        assert!(m.is_empty());
    }

    #[test]
    fn an_invalid_update_keeps_the_last_valid_version_with_a_warning() {
        let mut m = Model::default();
        m.apply(SourceEvent::Applied(service("a", "10.96.0.1")));
        m.take_changes();
        let warnings = m.apply(SourceEvent::Applied(service("a", "10.96.0.300")));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].problem.field, "spec.clusterIP");
        assert_eq!(warnings[0].consequence, Consequence::LastValidKept);
        assert!(warnings[0].to_string().contains("last valid version kept"));
        let kept = m.service(&id("a")).expect("the last valid version");
        assert_eq!(
            kept.cluster_ips,
            vec!["10.96.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(m.take_changes().is_empty(), "nothing changed");
        // A relist that shows only the invalid version keeps it too (its id was seen).
        m.apply(SourceEvent::Listed(
            Kind::Service,
            vec![service("a", "10.96.0.300")],
        ));
        assert!(m.service(&id("a")).is_some());
        // A valid update then applies, and a deletion removes it.
        m.apply(SourceEvent::Applied(service("a", "10.96.0.2")));
        assert_eq!(m.take_changes().services, BTreeSet::from([id("a")]));
        m.apply(SourceEvent::Deleted(service("a", "10.96.0.2")));
        assert!(m.service(&id("a")).is_none());
    }

    #[test]
    fn an_invalid_new_object_is_skipped() {
        let mut m = Model::default();
        let warnings = m.apply(SourceEvent::Applied(service("a", "10.96.0.300")));
        assert_eq!(warnings[0].consequence, Consequence::Skipped);
        assert!(m.service(&id("a")).is_none());
        assert!(m.take_changes().is_empty());
    }

    #[test]
    fn another_nodes_object_is_ignored() {
        let node = |name: &str| {
            Object::Node(Box::new(
                serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                    .expect("node"),
            ))
        };
        let mut m = Model::new(ProxyFilter::default(), Some("n1".into()));
        m.apply(SourceEvent::Applied(node("n2")));
        assert!(m.node().is_none());
        m.apply(SourceEvent::Applied(node("n1")));
        assert_eq!(m.node().map(|n| n.name.as_str()), Some("n1"));
        assert!(m.take_changes().node);
    }
}

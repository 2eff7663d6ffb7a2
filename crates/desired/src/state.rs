//! The whole desired state: the sum of every Service's [`ServicePlan`], updated incrementally.
//!
//! Each Service's plan is kept; a change to a Service or its EndpointSlices replaces just that
//! plan and adjusts reference-counted aggregates, so an update costs in proportion to the
//! Services that changed, not to the cluster. A change of node or configuration recomputes
//! everything.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use model::{Changes, IpFamily, Model, ObjectId};

use crate::claims::{Claims, Conflict};
use crate::config::{Config, NodeInfo};
use crate::ipset::{SetEntry, SetKind};
use crate::ipvs::{VirtualServer, VsKey};
use crate::plan::{OutFilterDrop, ServicePlan, plan};

/// A multiset: how many plans want each value.
#[derive(Debug, Clone)]
struct Counted<K: Ord>(BTreeMap<K, u32>);

impl<K: Ord> Default for Counted<K> {
    fn default() -> Self {
        Counted(BTreeMap::new())
    }
}

impl<K: Ord> Counted<K> {
    fn add(&mut self, k: K) {
        *self.0.entry(k).or_insert(0) += 1;
    }

    fn remove(&mut self, k: &K) {
        if let Some(n) = self.0.get_mut(k) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(k);
            }
        }
    }

    fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }
}

/// The desired kernel state for a model, node and configuration.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    config: Config,
    node: NodeInfo,
    plans: HashMap<ObjectId, ServicePlan>,
    /// Which Services want each virtual server, and which of them has it ([`Claims`]): the
    /// result does not depend on the order Services arrived in.
    claims: Claims,
    addresses: Counted<IpAddr>,
    sets: BTreeMap<(IpFamily, SetKind), Counted<SetEntry>>,
    out_filter: Counted<(IpFamily, OutFilterDrop)>,
    /// How many times [`DesiredState::update`] ran.
    generation: u64,
    /// How many times an update changed which virtual servers there are or the Service
    /// ports they implement ([`DesiredState::names_generation`]).
    names_generation: u64,
}

impl DesiredState {
    /// The state for `model` from scratch.
    pub fn new(config: Config, node: NodeInfo, model: &Model) -> DesiredState {
        let mut state = DesiredState {
            config,
            node,
            ..DesiredState::default()
        };
        let ids: Vec<ObjectId> = model.services().map(|s| s.id.clone()).collect();
        for id in ids {
            state.recompute(model, &id);
        }
        state
    }

    /// Brings the state up to date after `changes` to `model`, with `node` as this node now
    /// is. Only changed Services are recomputed, unless the node changed.
    pub fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        let generation = self.generation + 1;
        let mut names_generation = self.names_generation;
        if *node != self.node {
            *self = DesiredState::new(self.config.clone(), node.clone(), model);
            names_generation += 1;
        } else {
            for id in &changes.services {
                if self.recompute(model, id) {
                    names_generation += 1;
                }
            }
        }
        self.generation = generation;
        self.names_generation = names_generation;
    }

    /// Changes with every [`DesiredState::update`]: a consumer that derived
    /// something from the state can tell whether to derive it again.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changes with every [`DesiredState::update`] that adds or removes a virtual server,
    /// or changes the Service port one implements; not with a change of real servers
    /// alone. What is derived from the virtual servers' names only (the names of their
    /// statistics) follows this instead of [`DesiredState::generation`].
    pub fn names_generation(&self) -> u64 {
        self.names_generation
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node in force.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// Computes the Service's plan again; returns whether its virtual servers, or the
    /// ports they implement, changed.
    fn recompute(&mut self, model: &Model, id: &ObjectId) -> bool {
        let old = self.plans.remove(id);
        if let Some(old) = &old {
            self.subtract(old);
        }
        let Some(svc) = model.service(id) else {
            self.claims.set(id, None, []);
            return old.is_some_and(|old| !old.virtual_servers.is_empty());
        };
        let slices: Vec<_> = model.slices_of(id).map(AsRef::as_ref).collect();
        let new = plan(svc, &slices, &self.node, &self.config);
        let keys = new.virtual_servers.iter().map(|vs| vs.key);
        self.claims.set(id, Some(svc), keys);
        self.add(&new);
        let renamed = match &old {
            Some(old) => !named(old).eq(named(&new)),
            None => !new.virtual_servers.is_empty(),
        };
        self.plans.insert(id.clone(), new);
        renamed
    }

    fn add(&mut self, plan: &ServicePlan) {
        for a in &plan.addresses {
            self.addresses.add(*a);
        }
        for (family, kind, entry) in &plan.entries {
            self.sets
                .entry((*family, *kind))
                .or_default()
                .add(entry.clone());
        }
        for drop in &plan.out_filter {
            self.out_filter.add((IpFamily::of(&drop.addr), *drop));
        }
    }

    fn subtract(&mut self, plan: &ServicePlan) {
        for a in &plan.addresses {
            self.addresses.remove(a);
        }
        for (family, kind, entry) in &plan.entries {
            if let Some(set) = self.sets.get_mut(&(*family, *kind)) {
                set.remove(entry);
            }
        }
        for drop in &plan.out_filter {
            self.out_filter.remove(&(IpFamily::of(&drop.addr), *drop));
        }
    }

    /// Every virtual server, in ipvsadm's order.
    pub fn virtual_servers(&self) -> impl Iterator<Item = &VirtualServer> {
        self.claims.winners().filter_map(|(key, owner)| {
            self.plans
                .get(owner)?
                .virtual_servers
                .iter()
                .find(|vs| vs.key == *key)
        })
    }

    /// The virtual servers two or more Services claim, with who has each.
    pub fn conflicts(&self) -> impl Iterator<Item = Conflict<'_>> {
        self.claims.conflicts()
    }

    /// Every Service's claims on its virtual servers.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The addresses to bind on `kube-ipvs0`, sorted.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.keys().copied()
    }

    /// The entries of one set, sorted.
    pub fn set_entries(&self, family: IpFamily, kind: SetKind) -> impl Iterator<Item = &SetEntry> {
        self.sets
            .get(&(family, kind))
            .into_iter()
            .flat_map(Counted::keys)
    }

    /// Whether a set has no entries.
    pub fn set_is_empty(&self, family: IpFamily, kind: SetKind) -> bool {
        self.set_entries(family, kind).next().is_none()
    }

    /// The load balancer VIPs closed to the node itself, for one family.
    pub fn out_filter(&self, family: IpFamily) -> impl Iterator<Item = &OutFilterDrop> {
        self.out_filter
            .keys()
            .filter(move |(f, _)| *f == family)
            .map(|(_, d)| d)
    }
}

/// A plan's virtual servers by key, with the Service port each implements.
fn named(plan: &ServicePlan) -> impl Iterator<Item = (VsKey, &str)> {
    (plan.virtual_servers.iter()).map(|vs| (vs.key, vs.service.port.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Kind, Object, ProxyFilter, SourceEvent};

    fn service(name: &str, cluster_ip: &str, external_ip: &str) -> Object {
        Object::Service(Box::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"clusterIP": cluster_ip, "externalIPs": [external_ip], "ports": [{"port": 80}]},
            }))
            .expect("service"),
        ))
    }

    #[test]
    fn a_virtual_server_two_services_claim_goes_to_the_first_by_name_when_neither_is_dated() {
        let mut model = Model::new(ProxyFilter::default(), None);
        // Applied in reverse name order: the result must not depend on arrival order.
        model.apply(SourceEvent::Listed(
            Kind::Service,
            vec![
                service("b", "10.96.0.2", "192.0.2.1"),
                service("a", "10.96.0.1", "192.0.2.1"),
            ],
        ));
        let state = DesiredState::new(Config::default(), NodeInfo::default(), &model);
        let shared = state
            .virtual_servers()
            .find(|vs| vs.key.addr.to_string() == "192.0.2.1")
            .expect("the shared VIP");
        assert_eq!(shared.service.to_string(), "d/a");
        assert_eq!(state.conflicts().count(), 1);
        // The shared address is bound once and stays bound while either Service wants it.
        assert_eq!(
            state
                .addresses()
                .filter(|a| a.to_string() == "192.0.2.1")
                .count(),
            1
        );
        let mut model2 = model;
        model2.apply(SourceEvent::Deleted(service("a", "10.96.0.1", "192.0.2.1")));
        let mut state2 = state;
        let changes = model2.take_changes();
        let node = state2.node().clone();
        state2.update(&model2, &changes, &node);
        let shared = state2
            .virtual_servers()
            .find(|vs| vs.key.addr.to_string() == "192.0.2.1")
            .expect("still claimed by b");
        assert_eq!(shared.service.to_string(), "d/b");
        assert!(state2.addresses().any(|a| a.to_string() == "192.0.2.1"));
        assert!(!state2.addresses().any(|a| a.to_string() == "10.96.0.1"));
    }

    #[test]
    fn a_cluster_ip_is_never_taken_by_another_services_external_ip() {
        let mut model = Model::new(ProxyFilter::default(), None);
        // The intruder sorts first by name; it declares kube-dns's ClusterIP.
        model.apply(SourceEvent::Listed(
            Kind::Service,
            vec![
                service("aa", "10.96.0.20", "10.96.0.10"),
                service("kube-dns", "10.96.0.10", "192.0.2.53"),
            ],
        ));
        let state = DesiredState::new(Config::default(), NodeInfo::default(), &model);
        let owner = |addr: &str| {
            state
                .virtual_servers()
                .find(|vs| vs.key.addr.to_string() == addr)
                .map(|vs| vs.service.to_string())
        };
        assert_eq!(owner("10.96.0.10").as_deref(), Some("d/kube-dns"));
        let losers: Vec<String> = (state.conflicts())
            .flat_map(|c| c.losers.iter().map(|l| l.service.to_string()))
            .collect();
        assert_eq!(losers, ["d/aa"]);
    }

    #[test]
    fn every_update_moves_the_generation_also_when_the_node_changes() {
        let model = Model::new(ProxyFilter::default(), None);
        let mut state = DesiredState::new(Config::default(), NodeInfo::default(), &model);
        assert_eq!(state.generation(), 0);
        state.update(&model, &Changes::default(), &NodeInfo::default());
        assert_eq!(state.generation(), 1);
        let moved = NodeInfo {
            name: "node-2".into(),
            ..NodeInfo::default()
        };
        state.update(&model, &Changes::default(), &moved);
        assert_eq!(state.generation(), 2);
    }

    #[test]
    fn the_names_generation_moves_with_the_virtual_servers_not_with_their_real_servers() {
        let cluster = testkit::cluster::Synthetic {
            services: 2,
            endpoints_per_service: 3,
            node_port_every: None,
        };
        let mut model = Model::new(ProxyFilter::default(), None);
        for i in 0..2 {
            model.apply(SourceEvent::Applied(Object::Service(Box::new(
                cluster.service(i),
            ))));
            model.apply(SourceEvent::Applied(Object::EndpointSlice(Box::new(
                cluster.slice(i, 0),
            ))));
        }
        let node = NodeInfo::default();
        let mut state = DesiredState::new(Config::default(), node.clone(), &model);
        let _ = model.take_changes();
        let mut update = |model: &mut Model, event| {
            model.apply(event);
            let changes = model.take_changes();
            state.update(model, &changes, &node);
            (state.generation(), state.names_generation())
        };

        // One endpoint replaced: the real servers change, the virtual servers do not.
        let moved = Object::EndpointSlice(Box::new(cluster.slice(0, 1)));
        assert_eq!(update(&mut model, SourceEvent::Applied(moved)), (1, 0));
        // A port added: a virtual server more.
        let mut svc = cluster.service(1);
        let spec = svc.spec.as_mut().expect("spec");
        let ports = spec.ports.as_mut().expect("ports");
        let mut second = ports[0].clone();
        (second.name, second.port) = (Some("second".into()), 8443);
        ports[0].name = Some("first".into());
        ports.push(second);
        let renamed = Object::Service(Box::new(svc));
        assert_eq!(update(&mut model, SourceEvent::Applied(renamed)), (2, 1));
        // A Service deleted: its virtual servers go.
        let gone = Object::Service(Box::new(cluster.service(0)));
        assert_eq!(update(&mut model, SourceEvent::Deleted(gone)), (3, 2));
    }
}

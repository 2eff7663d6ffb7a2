//! The generator: every Service's share of each family's tables, kept between syncs so that
//! a change costs in proportion to the Services it touches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use desired::{Claims, Config, NodeInfo, claims};
use model::{Changes, IpFamily, Model, ObjectId};

use crate::chains::Fixed;
use crate::part::{Context, ServicePart};
use crate::service::{endpoint_count, service_part};
use crate::tables::{Tables, assemble};
use crate::{Error, Options};

/// Above this many endpoints in a family kube-proxy leaves the comments out of the
/// per-endpoint rules (`largeClusterEndpointsThreshold`).
pub const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// One family's Service parts.
#[derive(Debug, Clone, Default)]
struct FamilyParts {
    parts: BTreeMap<ObjectId, ServicePart>,
    /// Each Service's endpoint count, and their sum.
    endpoints: BTreeMap<ObjectId, usize>,
    total_endpoints: usize,
    large_cluster: bool,
}

impl FamilyParts {
    fn set_endpoints(&mut self, id: &ObjectId, count: Option<usize>) {
        let old = match count {
            Some(n) => self.endpoints.insert(id.clone(), n),
            None => self.endpoints.remove(id),
        };
        self.total_endpoints = self.total_endpoints + count.unwrap_or(0) - old.unwrap_or(0);
    }
}

/// kube-proxy's iptables mode for a model, node and configuration: the desired nat and
/// filter tables of each family the node proxies.
///
/// ```
/// use desired::{Claims, Config, NodeInfo, claims};
/// use iptables_mode::{Generator, Options};
/// use model::{IpFamily, Model, ProxyFilter};
///
/// let model = Model::new(ProxyFilter::default(), None);
/// let node = NodeInfo { name: "node-1".into(), ..NodeInfo::default() };
/// let generator = Generator::new(Config::default(), Options::default(), node, &model);
/// let tables = generator.tables(IpFamily::V4).unwrap();
/// assert!(tables.nat.chains.iter().any(|c| c.name.as_str() == "KUBE-SERVICES"));
/// ```
#[derive(Debug)]
pub struct Generator {
    config: Config,
    options: Options,
    node: NodeInfo,
    families: BTreeMap<IpFamily, FamilyParts>,
    rejected: BTreeMap<ObjectId, Error>,
    /// Who has each address two Services claim: the loser's rules for it are left out.
    claims: Claims,
}

impl Generator {
    /// The tables for `model` from scratch.
    pub fn new(config: Config, options: Options, node: NodeInfo, model: &Model) -> Generator {
        let mut generator = Generator {
            config,
            options,
            node,
            families: BTreeMap::new(),
            rejected: BTreeMap::new(),
            claims: Claims::default(),
        };
        for family in generator.node.families() {
            let mut parts = FamilyParts::default();
            for svc in model.services() {
                let slices: Vec<_> = model.slices_of(&svc.id).map(AsRef::as_ref).collect();
                let count = endpoint_count(svc, &slices, family, &generator.node.name);
                parts.set_endpoints(&svc.id, Some(count));
            }
            parts.large_cluster = parts.total_endpoints > LARGE_CLUSTER_ENDPOINTS;
            generator.families.insert(family, parts);
        }
        let ids: Vec<ObjectId> = model.services().map(|s| s.id.clone()).collect();
        generator.recompute_all(model, &ids);
        generator
    }

    /// Brings the tables up to date after `changes` to `model`, with `node` as this node
    /// now is. Only the changed Services are recomputed, unless the node changed or the
    /// family crossed the large-cluster threshold.
    pub fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        if *node != self.node {
            *self = Generator::new(self.config.clone(), self.options, node.clone(), model);
            return;
        }
        let ids: Vec<ObjectId> = changes.services.iter().cloned().collect();
        self.recompute_all(model, &ids);
        let mut flipped = false;
        for parts in self.families.values_mut() {
            let large = parts.total_endpoints > LARGE_CLUSTER_ENDPOINTS;
            flipped |= large != parts.large_cluster;
            parts.large_cluster = large;
        }
        if flipped {
            let all: Vec<ObjectId> = model.services().map(|s| s.id.clone()).collect();
            self.recompute_all(model, &all);
        }
    }

    /// Recomputes the Services `ids`, and those that won or lost an address by their
    /// change.
    fn recompute_all(&mut self, model: &Model, ids: &[ObjectId]) {
        let mut all: BTreeSet<ObjectId> = ids.iter().cloned().collect();
        for id in ids {
            let svc = model.service(id).map(|s| &**s);
            let keys = svc.into_iter().flat_map(claims::keys);
            all.extend(self.claims.set(id, svc, keys));
        }
        for id in &all {
            self.rejected.remove(id);
            let svc = model.service(id);
            let slices: Vec<_> = model.slices_of(id).map(AsRef::as_ref).collect();
            for (family, parts) in &mut self.families {
                parts.parts.remove(id);
                parts.set_endpoints(id, None);
                let Some(svc) = svc else { continue };
                let ctx = Context {
                    family: *family,
                    node: &self.node,
                    config: &self.config,
                    large_cluster: parts.large_cluster,
                    claims: &self.claims,
                };
                match service_part(svc, &slices, &ctx) {
                    Ok(part) => {
                        parts.set_endpoints(id, Some(part.endpoints));
                        parts.parts.insert(id.clone(), part);
                    }
                    Err(source) => {
                        self.rejected.insert(
                            id.clone(),
                            Error::Service {
                                service: id.clone(),
                                source: Box::new(source),
                            },
                        );
                    }
                }
            }
        }
    }

    /// The families this node proxies, whose tables [`Generator::tables`] gives; the other
    /// family's tables should be [`Tables::cleanup`].
    pub fn families(&self) -> impl Iterator<Item = IpFamily> + '_ {
        self.families.keys().copied()
    }

    /// The desired tables of `family` (the cleanup tables for a family not proxied).
    ///
    /// # Errors
    /// [`Error::Fixed`] if a rule of the fixed chains cannot be written (a local detector
    /// interface name with a line break).
    pub fn tables(&self, family: IpFamily) -> Result<Tables, Error> {
        let Some(parts) = self.families.get(&family) else {
            return Ok(Tables::cleanup(family));
        };
        let fixed = Fixed {
            family,
            config: &self.config,
            options: &self.options,
            node: &self.node,
        };
        assemble(&fixed, parts.parts.values()).map_err(|source| Error::Fixed {
            family,
            source: Box::new(source),
        })
    }

    /// Every UDP destination of every Service in the families proxied (cluster, external
    /// and load balancer IPs, node addresses with node ports), with the addresses of its
    /// serving endpoints: a conntrack flow to one of them translated to another address is
    /// stale. Ports without a serving endpoint are left out.
    pub fn udp_endpoints(&self) -> BTreeMap<(IpAddr, u16), BTreeSet<IpAddr>> {
        self.families
            .values()
            .flat_map(|parts| parts.parts.values())
            .flat_map(|part| part.udp.iter().cloned())
            .collect()
    }

    /// Services left out because their rules could not be written, with why.
    pub fn rejected(&self) -> impl Iterator<Item = &Error> {
        self.rejected.values()
    }

    /// Whether `family` is in kube-proxy's large-cluster mode (more than
    /// [`LARGE_CLUSTER_ENDPOINTS`] endpoints: no comments on endpoint rules).
    pub fn large_cluster(&self, family: IpFamily) -> bool {
        self.families.get(&family).is_some_and(|p| p.large_cluster)
    }

    /// Every Service's claims on its addresses.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node in force.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }
}

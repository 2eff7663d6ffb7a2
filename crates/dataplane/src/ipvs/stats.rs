//! The kernel's traffic counters of the virtual servers the desired state
//! programs, and of their real servers, named after the Kubernetes Service
//! port they implement.
//!
//! Per virtual server the counters come from one netlink dump of every
//! virtual server (its statistics attributes); per real server they need
//! one more dump per virtual server, the cost of reading the whole table
//! ([`StatsDetail::Backends`]). Virtual servers that no Service wants (not
//! ours, or still draining after their Service went) are left out. The
//! kernel's counters start at zero when a virtual or real server is created
//! (and when `ipvsadm -Z` zeroes them): a re-created one restarts its
//! counters, which Prometheus reads as a counter reset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use desired::DesiredState;
use ipvs::{ServiceKey, Stats};
use model::Model;

use super::IpvsKernel;
use crate::error::{Context as _, Error};

/// How much of the table the statistics show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatsDetail {
    /// Per virtual server only: one dump of the virtual servers.
    #[default]
    Services,
    /// Per real server too: one more dump per virtual server.
    Backends,
}

/// The Kubernetes names of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNames {
    /// The Service's namespace.
    pub namespace: Arc<str>,
    /// The Service's name.
    pub service: Arc<str>,
    /// The Service port's name (empty for a Service's only, unnamed port).
    pub port: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// `IPv4` or `IPv6`.
    pub ip_family: &'static str,
    /// The virtual server's address and port, shown `10.96.0.10:80` or `[fd00::a]:53`:
    /// a Service port has one virtual server per address it is reached on.
    pub virtual_server: SocketAddr,
}

/// The Kubernetes names of every virtual server of a desired state, and of
/// the Pods behind their real servers when asked for.
#[derive(Debug, Clone, Default)]
pub struct StatsNames {
    by_key: HashMap<ServiceKey, Arc<ServiceNames>>,
    pods: HashMap<(ServiceKey, SocketAddr), Arc<str>>,
    /// What these names follow; `None` for none yet.
    of: Option<Follows>,
}

/// What a set of [`StatsNames`] was made from, and so when it must be made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follows {
    /// The virtual servers only: [`DesiredState::names_generation`].
    VirtualServers(u64),
    /// The Pods behind the real servers too: every [`DesiredState::generation`].
    Pods(u64),
}

impl Follows {
    fn of(state: &DesiredState, pods: bool) -> Follows {
        match pods {
            true => Follows::Pods(state.generation()),
            false => Follows::VirtualServers(state.names_generation()),
        }
    }
}

impl StatsNames {
    /// The names of `state`'s virtual servers; with `pods_from`, the model
    /// `state` was computed from, also the Pods its EndpointSlices name.
    pub fn of(state: &DesiredState, pods_from: Option<&Model>) -> StatsNames {
        let mut pods = HashMap::new();
        let by_key = state
            .virtual_servers()
            .map(|vs| {
                let key = ServiceKey::inet(
                    reconcile::wanted::protocol(vs.key.protocol),
                    vs.key.addr,
                    vs.key.port,
                );
                let names = ServiceNames {
                    namespace: Arc::clone(&vs.service.service.namespace),
                    service: Arc::clone(&vs.service.service.name),
                    port: vs.service.port.clone(),
                    protocol: vs.key.protocol.as_str(),
                    ip_family: vs.key.family().as_str(),
                    virtual_server: SocketAddr::new(vs.key.addr, vs.key.port),
                };
                if let Some(model) = pods_from {
                    let node = &state.node().name;
                    pods.extend(
                        desired::endpoints::pods(model, vs, node)
                            .into_iter()
                            .map(|(endpoint, pod)| ((key, endpoint), Arc::from(pod.name))),
                    );
                }
                (key, Arc::new(names))
            })
            .collect();
        StatsNames {
            by_key,
            pods,
            of: Some(Follows::of(state, pods_from.is_some())),
        }
    }

    /// Whether these are the names of `state` as it is now: the same virtual servers, and
    /// when they name Pods, the same real servers too.
    pub fn is_of(&self, state: &DesiredState) -> bool {
        self.of
            .is_some_and(|of| of == Follows::of(state, matches!(of, Follows::Pods(_))))
    }
}

/// The counters of one virtual server, with its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerStats {
    /// Its Kubernetes names.
    pub names: Arc<ServiceNames>,
    /// Its counters.
    pub stats: Stats,
    /// Its real servers' (empty unless [`StatsDetail::Backends`]).
    pub backends: Vec<BackendStats>,
}

/// The counters and connections of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    /// The endpoint's address and port.
    pub endpoint: SocketAddr,
    /// The name of the Pod behind it, when its EndpointSlice names one (in
    /// the Service's namespace, as its `targetRef` almost always is).
    pub pod: Option<Arc<str>>,
    /// Connections in an active state (TCP `ESTABLISHED`).
    pub active_connections: u32,
    /// Other connections (TCP `TIME_WAIT`..., UDP).
    pub inactive_connections: u32,
    /// Its counters.
    pub stats: Stats,
}

/// Reads the statistics through a connection of its own to the kernel's
/// IPVS (the sync loop's is not shared).
#[derive(Debug)]
pub struct IpvsStats {
    client: ipvs::Client,
    detail: StatsDetail,
}

impl IpvsStats {
    /// Connects to IPVS in the calling thread's network namespace.
    ///
    /// # Errors
    /// When IPVS cannot be reached.
    pub fn open(detail: StatsDetail) -> Result<Self, Error> {
        let client = ipvs::Client::new().context("connecting to the kernel's IPVS")?;
        Ok(IpvsStats { client, detail })
    }

    /// The counters of every virtual server `names` knows, in kernel order,
    /// with their real servers' when configured.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub fn read(&mut self, names: &StatsNames) -> Result<Vec<VirtualServerStats>, Error> {
        read(&mut self.client, self.detail, names)
    }
}

/// [`IpvsStats::read`] through `client`.
fn read<K: IpvsKernel>(
    client: &mut K,
    detail: StatsDetail,
    names: &StatsNames,
) -> Result<Vec<VirtualServerStats>, Error> {
    let named = |key: &ServiceKey| names.by_key.get(key).map(Arc::clone);
    let read = match detail {
        StatsDetail::Services => client.services().map(|services| {
            services
                .into_iter()
                .filter_map(|s| {
                    Some(VirtualServerStats {
                        names: named(&s.service.key)?,
                        stats: s.stats,
                        backends: Vec::new(),
                    })
                })
                .collect()
        }),
        StatsDetail::Backends => client.list().map(|listed| {
            listed
                .into_iter()
                .filter_map(|s| {
                    Some(VirtualServerStats {
                        names: named(&s.service.service.key)?,
                        stats: s.service.stats,
                        backends: s
                            .destinations
                            .iter()
                            .map(|d| backend(names, s.service.service.key, d))
                            .collect(),
                    })
                })
                .collect()
        }),
    };
    read.context("reading the IPVS statistics")
}

fn backend(names: &StatsNames, key: ServiceKey, d: &ipvs::DestinationEntry) -> BackendStats {
    let endpoint = SocketAddr::new(d.destination.addr, d.destination.port);
    BackendStats {
        endpoint,
        pod: names.pods.get(&(key, endpoint)).map(Arc::clone),
        active_connections: d.active_connections,
        inactive_connections: d.inactive_connections,
        stats: d.stats,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use desired::{Config, DesiredState};
    use ipvs::{Change, Destination, ForwardMethod, Protocol, Scheduler, Service};

    use super::*;
    use crate::fake::ipvs::FakeIpvs;
    use model::Object;

    use crate::fixtures::{model, node, service};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn counted(connections: u64) -> Stats {
        Stats {
            connections,
            packets_in: 10 * connections,
            packets_out: 9 * connections,
            bytes_in: 600 * connections,
            bytes_out: 500 * connections,
            ..Stats::default()
        }
    }

    /// The EndpointSlice of `default/web`: 10.244.1.5 is Pod `web-0`.
    fn slice_naming_its_pod() -> Object {
        Object::EndpointSlice(Box::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-abcde", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true},
                               "targetRef": {"kind": "Pod", "name": "web-0"}}],
                "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            }))
            .expect("an EndpointSlice"),
        ))
    }

    /// `default/web` (TCP, port `p`, 10.96.0.10:80) with endpoint 10.244.1.5:8080
    /// (Pod `web-0`) programmed in the fake, plus a virtual server no Service
    /// wants, and both with traffic counted; its names with Pods.
    fn programmed() -> (FakeIpvs, StatsNames) {
        let model = model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            slice_naming_its_pod(),
        ]);
        let state = DesiredState::new(Config::default(), node(), &model);
        let kernel = FakeIpvs::default();
        let web = ServiceKey::inet(Protocol::Tcp, ip("10.96.0.10"), 80);
        let foreign = ServiceKey::inet(Protocol::Tcp, ip("10.0.0.1"), 80);
        {
            let mut table = kernel.table();
            for key in [web, foreign] {
                table.by_hand(&Change::AddService(Service::new(
                    key,
                    Scheduler::RoundRobin,
                )));
                let dest = Destination::new(ip("10.244.1.5"), 8080, ForwardMethod::Masquerade, 1);
                table.by_hand(&Change::AddDestination(key, dest));
                table.count(&key, None, counted(3));
                table.count(&key, Some((ip("10.244.1.5"), 8080)), counted(3));
            }
            table.connections(&web, ip("10.244.1.5"), 8080, 2);
        }
        (kernel, StatsNames::of(&state, Some(&model)))
    }

    fn web_names() -> ServiceNames {
        ServiceNames {
            namespace: "default".into(),
            service: "web".into(),
            port: "p".into(),
            protocol: "tcp",
            ip_family: "IPv4",
            virtual_server: "10.96.0.10:80".parse().expect("address"),
        }
    }

    #[test]
    fn per_service_the_counters_of_the_services_virtual_servers_only() {
        let (kernel, names) = programmed();
        let read = read(&mut kernel.clone(), StatsDetail::Services, &names).expect("read");
        assert_eq!(
            read,
            vec![VirtualServerStats {
                names: Arc::new(web_names()),
                stats: counted(3),
                backends: Vec::new(),
            }]
        );
    }

    #[test]
    fn per_backend_also_each_real_servers_counters_and_connections() {
        let (kernel, names) = programmed();
        let read = read(&mut kernel.clone(), StatsDetail::Backends, &names).expect("read");
        assert_eq!(
            read,
            vec![VirtualServerStats {
                names: Arc::new(web_names()),
                stats: counted(3),
                backends: vec![BackendStats {
                    endpoint: "10.244.1.5:8080".parse().expect("endpoint"),
                    pod: Some("web-0".into()),
                    active_connections: 2,
                    inactive_connections: 0,
                    stats: counted(3),
                }],
            }]
        );
    }

    #[test]
    fn a_recreated_virtual_server_starts_from_zero() {
        let (kernel, names) = programmed();
        let web = ServiceKey::inet(Protocol::Tcp, ip("10.96.0.10"), 80);
        {
            let mut table = kernel.table();
            table.by_hand(&Change::DeleteService(web));
            table.by_hand(&Change::AddService(Service::new(
                web,
                Scheduler::RoundRobin,
            )));
        }
        let read = read(&mut kernel.clone(), StatsDetail::Services, &names).expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].stats, Stats::default());
    }

    #[test]
    fn an_unreadable_table_is_an_error_naming_the_read() {
        let (kernel, names) = programmed();
        kernel.table().unreadable = true;
        let err = read(&mut kernel.clone(), StatsDetail::Services, &names).expect_err("unreadable");
        assert_eq!(err.op(), "reading the IPVS statistics");
    }

    #[test]
    fn names_are_made_again_when_what_they_name_changed() {
        let mut model = model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            slice_naming_its_pod(),
        ]);
        let mut state = DesiredState::new(Config::default(), node(), &model);
        let (services, pods) = (
            StatsNames::of(&state, None),
            StatsNames::of(&state, Some(&model)),
        );
        assert!(services.is_of(&state) && pods.is_of(&state));
        assert!(!StatsNames::default().is_of(&state));

        // The endpoint's Pod replaced: the Pods' names are stale, the virtual servers' not.
        let mut slice = slice_naming_its_pod();
        let Object::EndpointSlice(s) = &mut slice else {
            unreachable!("an EndpointSlice")
        };
        s.endpoints[0].addresses = vec!["10.244.1.6".into()];
        let mut update = |model: &mut model::Model, event| {
            model.apply(event);
            let changes = model.take_changes();
            state.update(model, &changes, &node());
            state.clone()
        };
        let moved = update(&mut model, model::SourceEvent::Applied(slice));
        assert!(services.is_of(&moved));
        assert!(!pods.is_of(&moved));

        // A second Service: the virtual servers changed.
        let added = service("db", "10.96.0.11", "TCP", 5432);
        let added = update(&mut model, model::SourceEvent::Applied(added));
        assert!(!services.is_of(&added));
    }

    #[test]
    fn without_the_model_no_pod_is_named() {
        let model = model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            slice_naming_its_pod(),
        ]);
        let state = DesiredState::new(Config::default(), node(), &model);
        assert_eq!(StatsNames::of(&state, Some(&model)).pods.len(), 1);
        assert!(StatsNames::of(&state, None).pods.is_empty());
    }
}

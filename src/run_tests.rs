//! The sync loop over IPVS mode's dataplane on in-memory tables
//! (`dataplane::fake::FakeIpvsDataplane`, on its own thread as the daemon runs it).

use std::time::Duration;

use clap::Parser;
use dataplane::fake::{FakeIpvsDataplane, FakeTables};
use ipvs::{Protocol, ServiceKey};
use model::{Kind, Object};

use super::*;
use proxy_metrics::Metrics;

impl Proxier for FakeIpvsDataplane {
    const MODE: ProxyMode = ProxyMode::Ipvs;

    /// Never called: the tests start the thread with the fake they hold the tables of.
    fn start(_: &Settings) -> impl FnOnce() -> anyhow::Result<Self> + Send + 'static {
        || anyhow::bail!("a test makes its fake dataplane itself")
    }
}

fn settings() -> Settings {
    let cli = Cli::try_parse_from(["kube-ipvs-proxy"]).expect("flags");
    Settings::resolve(&cli).expect("settings")
}

/// Service `default/{name}` with ClusterIP `ip`, TCP port 80, and its EndpointSlice with
/// one ready endpoint.
fn service(name: &str, ip: &str) -> Vec<Object> {
    let service = serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]},
    });
    let slice = serde_json::json!({
        "metadata": {"name": format!("{name}-abcde"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
    });
    vec![
        Object::Service(Box::new(
            serde_json::from_value(service).expect("a Service"),
        )),
        Object::EndpointSlice(Box::new(serde_json::from_value(slice).expect("a slice"))),
    ]
}

fn cluster_ip(ip: &str) -> ServiceKey {
    ServiceKey::inet(Protocol::Tcp, ip.parse().expect("address"), 80)
}

/// A pipeline whose source has listed `objects` (and no Node), its state computed.
fn pipeline(objects: Vec<Object>, settings: &Settings) -> Pipeline<desired::DesiredState> {
    let mut pipeline = Pipeline {
        model: Model::new(ProxyFilter::default(), Some("node-1".into())),
        state: None,
        node_name: Some("node-1".into()),
        node_ips: vec!["192.168.7.1".parse().expect("address")],
        interfaces: Some(BTreeSet::new()),
        interfaces_changed: false,
    };
    let (services, slices) = objects
        .into_iter()
        .partition(|o| matches!(o, Object::Service(_)));
    pipeline.apply(
        vec![
            SourceEvent::Listed(Kind::Service, services),
            SourceEvent::Listed(Kind::EndpointSlice, slices),
            SourceEvent::Listed(Kind::Node, Vec::new()),
        ],
        None,
    );
    assert_eq!(pipeline.update(settings, None), Update::Done);
    pipeline
}

/// While a sync waits inside the kernel, the source's next Service is applied to the
/// model (the pipeline is not locked), that sync programs only what it took, and the
/// next sync programs the new Service.
#[tokio::test]
async fn source_events_are_applied_while_a_sync_is_in_the_kernel_and_the_next_sync_takes_them() {
    let settings = settings();
    let (fake, tables): (FakeIpvsDataplane, FakeTables) = FakeIpvsDataplane::new();
    let (entered, release) = tables.hold_next_apply();
    let dataplane = DataplaneThread::start(move || Ok::<_, anyhow::Error>(fake))
        .await
        .expect("the dataplane's thread");
    let pipeline = Mutex::new(pipeline(service("a", "10.96.0.10"), &settings));
    let metrics = Metrics::for_mode(ProxyMode::Ipvs);
    let health = HealthState::new(2 * settings.sync_period);
    let service_health = ServiceHealth::new("node-1", health.clone(), None);
    let syncer = Syncer {
        pipeline: &pipeline,
        dataplane,
        service_health: Mutex::new(service_health),
        metrics: &metrics,
        stats: None,
        health: &health,
        settings: &settings,
        reporter: None,
        drift_events: std::sync::Mutex::new(DriftEvents::default()),
    };
    let runner = Runner::new(Duration::ZERO, settings.sync_period);
    let trigger = runner.trigger();
    let (tx, rx) = mpsc::channel(16);
    let source = follow(&pipeline, rx, None, &metrics, &health, &trigger, &settings);
    let b = ObjectId::new("default", "b");
    let test = async {
        let first = syncer.sync(Reason::Change);
        let meanwhile = async {
            entered.await.expect("the first sync reaches the kernel");
            tx.send(
                service("b", "10.96.0.11")
                    .into_iter()
                    .map(SourceEvent::Applied)
                    .collect(),
            )
            .await
            .expect("the source's channel");
            let applied = async {
                while pipeline.lock().await.model.service(&b).is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let applied = tokio::time::timeout(Duration::from_secs(10), applied).await;
            // Whatever the outcome, the kernel lets the sync go on.
            release.send(()).expect("the sync waits");
            applied.expect("the Service is applied while the sync is in the kernel");
        };
        let (first, ()) = tokio::join!(first, meanwhile);
        first.expect("the first sync");
        assert_eq!(tables.virtual_servers(), [cluster_ip("10.96.0.10")]);
        syncer.sync(Reason::Change).await.expect("the second sync");
        assert_eq!(
            tables.virtual_servers(),
            [cluster_ip("10.96.0.10"), cluster_ip("10.96.0.11")]
        );
    };
    tokio::select! {
        result = source => panic!("the source stopped: {result:?}"),
        () = test => {}
    }
}

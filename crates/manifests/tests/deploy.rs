//! The shipped manifests: strictly valid, consistent with each other, and shaped
//! like kube-proxy's DaemonSet where the issue asks for it.
//!
//! The kustomize tests run the real `kubectl kustomize` (Debian's `kubectl`); they
//! fail, naming the tool, where it is not installed.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use manifests::rbac::{Permission, granted};
use manifests::{Bundle, Manifest, parse_documents};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn manifests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn kustomize(dir: &Path) -> String {
    testkit::run(&["kubectl", "kustomize", &dir.display().to_string()])
}

fn base() -> Bundle {
    Bundle::load(&manifests_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn pod_spec(daemon_set: &DaemonSet) -> &PodSpec {
    let spec = daemon_set.spec.as_ref().expect("DaemonSet has a spec");
    spec.template
        .spec
        .as_ref()
        .expect("pod template has a spec")
}

fn container(daemon_set: &DaemonSet) -> &Container {
    match &pod_spec(daemon_set).containers[..] {
        [one] => one,
        many => panic!("expected one container, found {}", many.len()),
    }
}

/// The value of `--name=value` among the container's args.
fn flag<'a>(container: &'a Container, name: &str) -> &'a str {
    let prefix = format!("--{name}=");
    container
        .args
        .iter()
        .flatten()
        .find_map(|arg| arg.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in args {:?}", container.args))
}

fn port(container: &Container, name: &str) -> i32 {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name}"))
        .container_port
}

#[test]
fn kubectl_kustomize_renders_exactly_the_strictly_parsed_base() {
    let rendered = Bundle::from_yaml(&kustomize(&manifests_dir()), "kubectl kustomize manifests/")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rendered, base());
}

#[test]
fn every_yaml_file_in_base_is_a_resource_of_its_kustomization() {
    let dir = manifests_dir().join("base");
    let kustomization: Value = serde_norway::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("readable"),
    )
    .expect("valid YAML");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("a resources list")
        .iter()
        .map(|r| r.as_str().expect("a path").to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn objects_reference_each_other_by_the_right_names() {
    let bundle = base();
    let account = &bundle.service_account.metadata;
    let binding = &bundle.cluster_role_binding;
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&binding.role_ref.name),
        bundle.cluster_role.metadata.name.as_ref()
    );
    match binding.subjects.as_deref() {
        Some([subject]) => {
            assert_eq!(subject.kind, "ServiceAccount");
            assert_eq!(Some(&subject.name), account.name.as_ref());
            assert_eq!(subject.namespace, account.namespace);
        }
        other => panic!("expected one subject, got {other:?}"),
    }
    let daemon_set = &bundle.daemon_set;
    assert_eq!(daemon_set.metadata.namespace, account.namespace);
    assert_eq!(pod_spec(daemon_set).service_account_name, account.name);

    // --config names a key of the ConfigMap, through the volume mounted for it.
    let config = Path::new(flag(container(daemon_set), "config"));
    let (dir, key) = (
        config.parent().expect("a dir"),
        config.file_name().expect("a file"),
    );
    let mount = container(daemon_set)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Path::new(&m.mount_path) == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {}", dir.display()));
    let volume = pod_spec(daemon_set)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mount's volume");
    let source = volume.config_map.as_ref().expect("a ConfigMap volume");
    assert_eq!(Some(&source.name), bundle.config_map.metadata.name.as_ref());
    assert_eq!(bundle.config_map.metadata.namespace, account.namespace);
    let data = bundle.config_map.data.as_ref().expect("ConfigMap data");
    assert!(data.contains_key(&*key.to_string_lossy()), "no key {key:?}");
}

/// The `KubeProxyConfiguration` in the ConfigMap, as a generic document.
fn kube_proxy_configuration(bundle: &Bundle) -> Value {
    let config = Path::new(flag(container(&bundle.daemon_set), "config"));
    let key = config.file_name().expect("a file").to_string_lossy();
    let text = &bundle.config_map.data.as_ref().expect("data")[&*key];
    serde_norway::from_str(text).expect("the configuration is YAML")
}

fn bind_port(address: &Value) -> i32 {
    let address = address.as_str().expect("a host:port string");
    let (_, port) = address.rsplit_once(':').expect("host:port");
    port.parse().expect("a port number")
}

#[test]
fn configuration_is_kube_proxy_ipvs_mode_serving_the_ports_the_pod_declares() {
    let bundle = base();
    let config = kube_proxy_configuration(&bundle);
    assert_eq!(config["apiVersion"], "kubeproxy.config.k8s.io/v1alpha1");
    assert_eq!(config["kind"], "KubeProxyConfiguration");
    assert_eq!(config["mode"], "ipvs");
    assert_eq!(config["ipvs"]["scheduler"], "rr");
    assert_eq!(config["ipvs"]["syncPeriod"], "30s");
    assert_eq!(config["ipvs"]["minSyncPeriod"], "1s");
    assert!(config["clusterCIDR"].is_string(), "clusterCIDR placeholder");
    let container = container(&bundle.daemon_set);
    assert_eq!(
        bind_port(&config["healthzBindAddress"]),
        port(container, "healthz")
    );
    assert_eq!(
        bind_port(&config["metricsBindAddress"]),
        port(container, "metrics")
    );
}

#[test]
fn daemon_set_runs_like_kube_proxy() {
    let daemon_set = base().daemon_set;
    let spec = daemon_set.spec.as_ref().expect("spec");
    let strategy = spec.update_strategy.as_ref().expect("an update strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.as_ref().expect("rollingUpdate");
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );

    let pod = pod_spec(&daemon_set);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let tolerates_everything =
        pod.tolerations.iter().flatten().any(|t| {
            t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()
        });
    assert!(tolerates_everything, "{:?}", pod.tolerations);

    let container = container(&daemon_set);
    assert_eq!(flag(container, "hostname-override"), "$(NODE_NAME)");
    let node_name = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "NODE_NAME")
        .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
        .expect("NODE_NAME from the downward API");
    assert_eq!(node_name.field_path, "spec.nodeName");

    let probe_path = |probe: Option<&k8s_openapi::api::core::v1::Probe>| {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        (get.path.clone(), get.port.clone())
    };
    let healthz =
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("healthz".into());
    assert_eq!(
        probe_path(container.liveness_probe.as_ref()),
        (Some("/livez".into()), healthz.clone())
    );
    assert_eq!(
        probe_path(container.readiness_probe.as_ref()),
        (Some("/healthz".into()), healthz)
    );
    assert_eq!(port(container, "healthz"), 10256);
    assert_eq!(port(container, "metrics"), 10249);
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    assert!(
        requests.is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")),
        "cpu and memory requests"
    );

    let host_path = |mount_path: &str| {
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        let source = volume
            .and_then(|v| v.host_path.clone())
            .expect("a hostPath");
        (mount.read_only, source.path, source.type_)
    };
    assert_eq!(
        host_path("/lib/modules"),
        (Some(true), "/lib/modules".into(), Some("Directory".into()))
    );
    assert_eq!(
        host_path("/run/xtables.lock"),
        (
            None,
            "/run/xtables.lock".into(),
            Some("FileOrCreate".into())
        )
    );
}

/// The daemon's API requests, as documented in docs/operations.md#rbac. The
/// requests the daemon really makes are checked against the ClusterRole by the
/// fake API server in crates/model/tests/watch.rs; this pins the documented list.
const DAEMON_REQUESTS: [(&str, &str, &str); 8] = [
    ("", "services", "list"),
    ("", "services", "watch"),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("discovery.k8s.io", "endpointslices", "watch"),
    ("", "nodes", "list"),
    ("", "nodes", "watch"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
];

#[test]
fn cluster_role_grants_exactly_the_documented_requests() {
    let grants = granted(&base().cluster_role).unwrap_or_else(|e| panic!("{e}"));
    let expected: BTreeSet<Permission> = DAEMON_REQUESTS
        .iter()
        .map(|(group, resource, verb)| Permission::new(group, resource, verb))
        .collect();
    assert_eq!(grants, expected);
}

fn only_daemon_set(text: &str, origin: &str) -> DaemonSet {
    match &parse_documents(text, origin).unwrap_or_else(|e| panic!("{e}"))[..] {
        [Manifest::DaemonSet(d)] => (**d).clone(),
        other => panic!("{origin}: expected one DaemonSet, got {other:?}"),
    }
}

/// The takeover label, as `(key, value)`, from our DaemonSet's nodeSelector in the overlay.
fn takeover_selector(overlay: &Bundle) -> (String, String) {
    let selector = pod_spec(&overlay.daemon_set)
        .node_selector
        .clone()
        .expect("nodeSelector");
    let base_selector = pod_spec(&base().daemon_set)
        .node_selector
        .clone()
        .unwrap_or_default();
    let added: Vec<_> = selector
        .into_iter()
        .filter(|(k, _)| !base_selector.contains_key(k))
        .collect();
    match &added[..] {
        [(key, value)] => (key.clone(), value.clone()),
        other => panic!("expected one added selector label, got {other:?}"),
    }
}

#[test]
fn takeover_overlay_only_confines_the_daemon_set_to_labelled_nodes() {
    let dir = manifests_dir().join("takeover");
    let overlay = Bundle::from_yaml(&kustomize(&dir), "kubectl kustomize manifests/takeover/")
        .unwrap_or_else(|e| panic!("{e}"));
    let (key, _) = takeover_selector(&overlay);
    let mut without = overlay.clone();
    let pod = without
        .daemon_set
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut());
    pod.and_then(|p| p.node_selector.as_mut())
        .map(|s| s.remove(&key));
    assert_eq!(without, base());
}

#[test]
fn kube_proxy_patch_keeps_kube_proxy_off_exactly_the_labelled_nodes() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let copy = |from: &Path, to: &str| std::fs::copy(from, work.path().join(to)).expect("copy");
    copy(
        &testdata.join("kube-proxy-daemonset.yaml"),
        "kube-proxy.yaml",
    );
    copy(
        &manifests_dir().join("takeover/kube-proxy-patch.yaml"),
        "patch.yaml",
    );
    std::fs::write(
        work.path().join("kustomization.yaml"),
        "resources: [kube-proxy.yaml]\npatches:\n  - path: patch.yaml\n",
    )
    .expect("write");

    let patched = only_daemon_set(&kustomize(work.path()), "patched kube-proxy");
    let overlay = Bundle::from_yaml(&kustomize(&manifests_dir().join("takeover")), "takeover")
        .unwrap_or_else(|e| panic!("{e}"));
    let (key, value) = takeover_selector(&overlay);
    let affinity = pod_spec(&patched)
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    let required = affinity
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("required node affinity");
    match &required.node_selector_terms[..] {
        [term] => match term.match_expressions.as_deref() {
            Some([expression]) => {
                assert_eq!(expression.key, key);
                assert_eq!(expression.operator, "NotIn");
                assert_eq!(expression.values, Some(vec![value]));
            }
            other => panic!("expected one expression, got {other:?}"),
        },
        other => panic!("expected one term, got {other:?}"),
    }

    // Nothing else of kube-proxy's DaemonSet changed.
    let fixture = testdata.join("kube-proxy-daemonset.yaml");
    let original = only_daemon_set(&std::fs::read_to_string(fixture).expect("read"), "fixture");
    let mut unpatched = patched.clone();
    if let Some(pod) = unpatched
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        pod.affinity = None;
    }
    assert_eq!(unpatched, original);
}

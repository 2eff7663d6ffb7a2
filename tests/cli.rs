//! The daemon's command line, end to end: the dry run of the example cluster, JSON output,
//! configuration errors and the help text.

use std::path::Path;
use std::process::{Command, Output};

fn daemon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run kube-ipvs-proxy")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a dry run of the example cluster with `extra` flags and compares its output with
/// `testdata/GOLDEN` (rewritten with UPDATE_GOLDEN=1); returns stderr.
fn dry_run_matches(extra: &[&str], golden: &str) -> String {
    let mut args = vec!["--from-dir", "examples/cluster", "--dry-run"];
    args.extend_from_slice(extra);
    let out = daemon(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, stdout(&out)).expect("write golden");
    }
    let expected =
        std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    assert_eq!(stdout(&out), expected);
    stderr(&out)
}

#[test]
fn dry_run_of_the_example_cluster_in_iptables_mode_prints_kube_proxy_chains() {
    let warnings = dry_run_matches(
        &["--proxy-mode", "iptables"],
        "example-cluster.iptables.txt",
    );
    assert!(
        warnings.contains("default/broken: spec.ports[0].port"),
        "{warnings}"
    );
}

#[test]
fn json_dry_run_in_iptables_mode_has_each_tables_text() {
    let out = daemon(&[
        "--from-dir",
        "examples/cluster",
        "--dry-run",
        "--proxy-mode",
        "iptables",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let nat = json["iptables"]["V4"]["nat"]
        .as_str()
        .expect("the IPv4 nat table");
    assert!(
        nat.starts_with("*nat\n") && nat.contains("-A KUBE-SERVICES "),
        "{nat}"
    );
    let filter = json["iptables"]["V4"]["filter"]
        .as_str()
        .expect("the IPv4 filter table");
    assert!(
        filter.contains("has no endpoints\" -m tcp -p tcp"),
        "{filter}"
    );
}

#[test]
fn dry_run_of_the_example_cluster_matches_the_expected_text() {
    let warnings = dry_run_matches(&[], "example-cluster.txt");
    assert!(
        warnings.contains("default/broken: spec.ports[0].port"),
        "{warnings}"
    );
    assert!(warnings.contains("default/oddsched"), "{warnings}");
}

#[test]
fn json_output_carries_the_same_state() {
    let text = stdout(&daemon(&["--from-dir", "examples/cluster", "--dry-run"]));
    let out = daemon(&[
        "--from-dir",
        "examples/cluster",
        "--dry-run",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let vs = json["virtualServers"].as_array().expect("virtualServers");
    assert_eq!(
        vs.len(),
        text.lines()
            .filter(|l| l.starts_with("-A -") || l.starts_with("-A --"))
            .count()
    );
    assert_eq!(
        json["addresses"].as_array().map(Vec::len),
        Some(text.matches("dev kube-ipvs0").count())
    );
    let first = &vs[0];
    assert_eq!(first["addr"], "10.96.0.10");
    assert_eq!(first["realServers"][0]["weight"], 1);
    assert_eq!(first["realServers"][0]["forward"], "masquerade");
}

#[test]
fn with_a_config_file_kube_proxys_flags_are_ignored_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n\
         clusterCIDR: 10.244.0.0/16\nipvs:\n  scheduler: lc\n",
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path");
    let from_file = stdout(&daemon(&[
        "--config",
        config,
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]));
    assert!(
        from_file.contains("-A -t 10.96.20.20:80 -s lc\n"),
        "{from_file}"
    );
    assert!(
        from_file.contains("-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment"),
        "{from_file}"
    );
    let out = daemon(&[
        "--config",
        config,
        "--ipvs-scheduler",
        "wrr",
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]);
    // As in kube-proxy (Options.Complete replaces the flag-built configuration with the
    // file's), the flag changes nothing and is named in a warning.
    assert!(
        stderr(&out).contains("--ipvs-scheduler ignored: as in kube-proxy"),
        "{}",
        stderr(&out)
    );
    let overridden = stdout(&out);
    assert!(
        overridden.contains("-A -t 10.96.20.20:80 -s lc\n"),
        "{overridden}"
    );
}

/// A kubeadm-shaped file with every v1alpha1 field set plus an unknown one: the daemon
/// starts, names the unknown field once (lenient decoding), warns once for each field it
/// does not honour, and honours the others.
#[test]
fn a_config_with_every_field_and_an_unknown_one_starts_and_warns() {
    let out = daemon(&[
        "--config",
        "testdata/kubeadm-kube-proxy-every-field.conf",
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let warned = |needle: &str| err.matches(needle).count();
    assert_eq!(
        warned(
            "using lenient decoding as strict decoding failed: unknown or duplicate field(s) futureField "
        ),
        1,
        "{err}"
    );
    for field in [
        "featureGates / --feature-gates (SomeGate) is not honoured",
        "clientConnection.qps / --kube-api-qps is not honoured",
        "clientConnection.burst / --kube-api-burst is not honoured",
        "clientConnection.contentType, acceptContentTypes / --kube-api-content-type is not honoured",
        "enableProfiling / --profiling is not honoured",
        "showHiddenMetricsForVersion / --show-hidden-metrics-for-version is not honoured",
        "configSyncPeriod / --config-sync-period is not honoured",
        "logging.format is not honoured",
        "logging.flushFrequency / --log-flush-frequency is not honoured",
        "nftables.* is not honoured",
    ] {
        assert_eq!(warned(field), 1, "{field}: {err}");
    }
    let text = stdout(&out);
    for line in [
        "# scheduler: lc\n",
        "# sync period: 45s (min 1s)\n",
        "# exclude-cidrs: 192.0.2.0/24\n",
        "# strict-arp: true\n",
        "# nodeport-addresses: 192.168.50.0/24\n",
        "# conntrack: max kernel's, tcp established 86400s, tcp close-wait 3600s, tcp be-liberal kernel's, udp kernel's, udp stream kernel's\n",
        "# oom-score-adj: -999\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// The flags of the example, and every logging flag of kube-proxy, are accepted.
#[test]
fn kube_proxys_flags_are_accepted() {
    let out = daemon(&[
        "--v=4",
        "--conntrack-max-per-core=0",
        "--oom-score-adj=-999",
        "-v",
        "2",
        "--vmodule=proxier=5",
        "--logging-format=text",
        "--log-flush-frequency=5s",
        "--feature-gates=A=true,B=false",
        "--kube-api-qps=5",
        "--kube-api-burst=10",
        "--kube-api-content-type=application/vnd.kubernetes.protobuf",
        "--profiling=false",
        "--config-sync-period=15m",
        "--iptables-masquerade-bit=14",
        "--iptables-min-sync-period=1s",
        "--iptables-sync-period=30s",
        "--iptables-localhost-nodeports=false",
        "--detect-local-mode=ClusterCIDR",
        "--cluster-cidr=10.244.0.0/16",
        "--pod-bridge-interface=cbr0",
        "--pod-interface-name-prefix=veth",
        "--bind-address=0.0.0.0",
        "--bind-address-hard-fail=false",
        "--healthz-port=10256",
        "--metrics-port=10249",
        "--conntrack-min=131072",
        "--conntrack-tcp-timeout-established=24h",
        "--conntrack-tcp-timeout-close-wait=1h",
        "--conntrack-tcp-be-liberal=false",
        "--conntrack-udp-timeout=0s",
        "--conntrack-udp-timeout-stream=0s",
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("# conntrack: max kernel's,"), "{text}");
    assert!(text.contains("# oom-score-adj: -999\n"), "{text}");
    let err = stderr(&out);
    for flag in ["--vmodule", "--feature-gates", "--kube-api-qps"] {
        assert!(err.contains(flag), "{flag} not warned: {err}");
    }
}

#[test]
fn config_errors_name_the_field_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (body, field) in [
        ("ipvs:\n  strictARP: sometimes\n", "ipvs.strictARP"),
        ("ipvs:\n  scheduler: fastest\n", "ipvs.scheduler"),
        ("mode: nftables\n", "mode: \"nftables\" is not a proxy mode"),
    ] {
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}"
            ),
        )
        .expect("write config");
        let out = daemon(&[
            "--config",
            path.to_str().expect("utf-8"),
            "--from-dir",
            "examples/cluster",
            "--dry-run",
        ]);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", stderr(&out));
        assert!(stderr(&out).contains(field), "{body}: {}", stderr(&out));
    }
}

#[test]
fn an_unknown_proxy_mode_flag_is_named_and_exits_2() {
    let out = daemon(&[
        "--proxy-mode",
        "userspace",
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--proxy-mode: \"userspace\" is not a proxy mode"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_file_is_named_and_the_others_still_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: [\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("worse.yaml"), b"kind: \xff\n").expect("write");
    std::fs::write(
        dir.path().join("good.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: good, namespace: d}\n\
         spec: {clusterIP: 10.96.7.7, ports: [{port: 80}]}\n",
    )
    .expect("write");
    let out = daemon(&[
        "--from-dir",
        dir.path().to_str().expect("utf-8"),
        "--dry-run",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("bad.yaml:") && err.contains("malformed YAML"),
        "{err}"
    );
    assert!(err.contains("worse.yaml: not UTF-8"), "{err}");
    assert!(stdout(&out).contains("10.96.7.7:80"), "{}", stdout(&out));
}

#[test]
fn help_explains_every_flag_and_version_names_the_commit() {
    let help = stdout(&daemon(&["--help"]));
    for flag in [
        "--config",
        "--from-dir",
        "--dry-run",
        "--diff",
        "--output",
        "--hostname-override",
        "--node-ip",
        "--kubeconfig",
        "--proxy-mode",
        "--no-fallback",
        "--ipvs-scheduler",
        "--ipvs-sync-period",
        "--ipvs-min-sync-period",
        "--cluster-cidr",
        "--masquerade-all",
        "--nodeport-addresses",
        "--healthz-bind-address",
        "--metrics-bind-address",
        "--ipvs-strict-arp",
        "--ipvs-exclude-cidrs",
        "--ipvs-tcp-timeout",
        "--ipvs-tcpfin-timeout",
        "--ipvs-udp-timeout",
        "--service-proxy-name",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing"));
        let explained = help
            .split(line)
            .nth(1)
            .and_then(|rest| rest.lines().nth(1))
            .unwrap_or_default();
        assert!(!explained.trim().is_empty(), "{flag} has no explanation");
    }
    let version = stdout(&daemon(&["--version"]));
    assert!(
        version.starts_with("kube-ipvs-proxy 0.1.0 (commit "),
        "{version}"
    );
}

#[test]
fn node_ip_flags_replace_the_node_objects_addresses() {
    let out = stdout(&daemon(&[
        "--from-dir",
        "examples/cluster",
        "--dry-run",
        "--node-ip",
        "192.168.50.4",
        "--hostname-override",
        "worker-1",
    ]));
    assert!(out.contains("-A -t 192.168.50.4:30080 -s rr"), "{out}");
    assert!(
        !out.contains("# ipset save (IPv6)"),
        "an IPv4-only node proxies IPv4 only"
    );
}

#[test]
fn a_kubeadm_kube_proxy_config_is_accepted_with_kube_proxy_defaults() {
    let out = daemon(&[
        "--config",
        "testdata/kubeadm-kube-proxy.conf",
        "--from-dir",
        "examples/cluster",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "# scheduler: rr\n",
        "# sync period: 30s (min 0ns)\n",
        "# healthz: 0.0.0.0:10256\n",
        "# metrics: 127.0.0.1:10249\n",
        "# local traffic detector: ClusterCIDR 10.244.0.0/16\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// The live pre-flight's exit code 1 means "the node differs", so what keeps it from
/// comparing exits 2: another proxy mode (only IPVS mode adopts kube-proxy's tables), and
/// `--diff` without `--dry-run` or with `--output` (clap's usage errors).
#[test]
fn the_preflight_exits_2_when_it_cannot_compare() {
    let out = daemon(&[
        "--from-dir",
        "examples/cluster",
        "--dry-run",
        "--diff",
        "--proxy-mode",
        "iptables",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--diff compares the node with IPVS mode's state, but the proxy mode is iptables"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    let out = daemon(&["--from-dir", "examples/cluster", "--diff"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dry-run"), "{}", stderr(&out));
    // Its output is text only.
    let out = daemon(&[
        "--from-dir",
        "examples/cluster",
        "--dry-run",
        "--diff",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

/// kube-proxy's choice of API server: `--kubeconfig` (or `clientConnection.kubeconfig`),
/// else the Pod's in-cluster configuration only (`rest.InClusterConfig`), never
/// `$KUBECONFIG` or `~/.kube/config` as kubectl (and kube-rs' `Config::infer`) would.
/// `explain`, which an operator runs by hand, reads `$KUBECONFIG` as kubectl does.
/// `--master` replaces the server.
#[test]
fn without_a_kubeconfig_the_daemon_asks_only_the_in_cluster_configuration() {
    use serde_json::json;
    let api = testkit::apiserver::FakeApiServer::start(
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    );
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.7.1"}]}}),
    );
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}]}}));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), None);
    let kubeconfig = kubeconfig.to_str().expect("utf-8");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
            .args(args)
            .args(["--hostname-override", "node-1"])
            .env("RUST_LOG", "warn")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .expect("run kube-ipvs-proxy")
    };

    let out = run(&["--dry-run"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no kubeconfig given and no in-cluster configuration"),
        "{}",
        stderr(&out)
    );
    assert!(api.requests().is_empty(), "{:?}", api.requests());

    let out = run(&["--dry-run", "--kubeconfig", kubeconfig]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-A -t 10.96.0.10:80 "),
        "{}",
        stdout(&out)
    );

    // --master replaces the kubeconfig's server (kube-proxy's masterOverride).
    let elsewhere = dir.path().join("elsewhere");
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    std::fs::write(&elsewhere, text.replace(&api.url(), "https://127.0.0.1:1")).expect("write");
    let elsewhere = elsewhere.to_str().expect("utf-8");
    let out = run(&[
        "--dry-run",
        "--kubeconfig",
        elsewhere,
        "--master",
        &api.url(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-A -t 10.96.0.10:80 "),
        "{}",
        stdout(&out)
    );
    let out = run(&["--dry-run", "--master", "https://a b"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--master https://a b: "),
        "{}",
        stderr(&out)
    );

    let out = run(&["explain", "default/web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("10.96.0.10"), "{}", stdout(&out));
}

//! The DaemonSet in `manifests/` starts the daemon with arguments and a
//! configuration file that the daemon itself accepts: its container args
//! (with `$(NODE_NAME)` expanded as the kubelet does) and the ConfigMap's
//! `KubeProxyConfiguration`, checked by a dry run of the real binary.

use std::path::Path;
use std::process::Command;

use manifests::Bundle;

#[test]
fn the_daemon_set_args_and_config_map_are_accepted_by_the_daemon() {
    let bundle = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base"))
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = bundle
        .daemon_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let container = spec.containers.first().expect("a container");
    let args = container.args.clone().expect("container args");

    // Put the ConfigMap's files where the pod mounts them, here a temporary directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = bundle.config_map.data.clone().expect("config map data");
    for (name, text) in &data {
        std::fs::write(dir.path().join(name), text).expect("write the config file");
    }
    let cluster = tempfile::tempdir().expect("empty cluster directory");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("$(NODE_NAME)", "node-1").replace(
                "/var/lib/kube-ipvs-proxy",
                &dir.path().display().to_string(),
            )
        })
        .collect();

    let out = Command::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
        .args(&args)
        .arg("--from-dir")
        .arg(cluster.path())
        .arg("--dry-run")
        .output()
        .expect("run the daemon");
    assert!(
        out.status.success(),
        "the daemon refused the DaemonSet's args {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The settings it printed come from the ConfigMap, not from the defaults
    // (metrics on 127.0.0.1, no minimum sync period).
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in ["# metrics: 0.0.0.0:10249", "# sync period: 30s (min 1s)"] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing from the dry run:\n{stdout}"
        );
    }
}

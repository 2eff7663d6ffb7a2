//! `--write-config-to FILE`: the effective configuration as a `KubeProxyConfiguration`
//! (v1alpha1) file, as kube-proxy's `writeConfigFile` writes its own (defaults and flags
//! applied), so it can be given back with `--config`. A disabled endpoint (`--healthz-port=0`)
//! is written empty, which the file reads as the default address, as in kube-proxy, which
//! ignores the port flags when writing.

use std::fmt::Write as _;
use std::time::Duration;

use dataplane::ipvs::StatsDetail;
use desired::{LocalDetector, NodePortAddresses};

use crate::Settings;
use dataplane::ProxyMode;

/// A duration as Go's `time.Duration.String` prints whole and fractional seconds
/// (`0s`, `500ms`, `30s`, `1m30s`, `24h0m0s`).
fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        return match d.subsec_nanos() {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, total / 60 % 60);
    let mut secs = format!("{}", total % 60);
    if d.subsec_nanos() != 0 {
        let frac = format!("{:09}", d.subsec_nanos());
        secs = format!("{secs}.{}", frac.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// A YAML string, quoted.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The file's text.
pub fn render(s: &Settings) -> String {
    let d = &s.desired;
    let list = |indent: &str, items: Vec<String>| {
        if items.is_empty() {
            " null".to_owned()
        } else {
            items
                .iter()
                .map(|i| format!("\n{indent}- {}", quoted(i)))
                .collect()
        }
    };
    let (detect_mode, cluster_cidrs, bridge, prefix) = match &d.local_detector {
        LocalDetector::None => ("ClusterCIDR", vec![], "", ""),
        LocalDetector::ClusterCidr(c) => (
            "ClusterCIDR",
            c.iter().map(ToString::to_string).collect(),
            "",
            "",
        ),
        LocalDetector::BridgeInterface(b) => ("BridgeInterface", vec![], b.as_str(), ""),
        LocalDetector::InterfaceNamePrefix(p) => ("InterfaceNamePrefix", vec![], "", p.as_str()),
    };
    let node_ports = match &d.node_port_addresses {
        NodePortAddresses::All => vec![],
        NodePortAddresses::Select { cidrs, primary } => cidrs
            .iter()
            .map(ToString::to_string)
            .chain(primary.then(|| "primary".to_owned()))
            .collect(),
    };
    let endpoint =
        |a: Option<std::net::SocketAddr>| quoted(&a.map(|a| a.to_string()).unwrap_or_default());
    let secs = |v: Option<u64>| go_duration(Duration::from_secs(v.unwrap_or(0)));
    let c = &s.conntrack;
    let [tcp, tcpfin, udp] = s.ipvs_timeouts;
    let mode = match s.mode {
        ProxyMode::Ipvs => "ipvs",
        ProxyMode::Iptables => "iptables",
    };
    // Our own fields (`ipvs.drainTimeout`, `ipvs.stats`) only when they differ from the
    // default, so that the file is kube-proxy's own unless the settings are not.
    let drain = if s.drain_timeout == reconcile::Draining::DEFAULT_TIMEOUT {
        String::new()
    } else {
        format!("drainTimeout: {}\n  ", go_duration(s.drain_timeout))
    };
    let stats = match s.ipvs_stats {
        StatsDetail::Services => "",
        StatsDetail::Backends => "stats: backends\n  ",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n\
         bindAddressHardFail: {hard_fail}\n\
         clientConnection:\n  kubeconfig: {kubeconfig}\n\
         clusterCIDR: {cluster_cidr}\n\
         conntrack:\n  maxPerCore: {per_core}\n  min: {min}\n  tcpBeLiberal: {liberal}\n  \
         tcpCloseWaitTimeout: {close_wait}\n  tcpEstablishedTimeout: {established}\n  \
         udpStreamTimeout: {udp_stream}\n  udpTimeout: {udp_timeout}\n\
         detectLocal:\n  bridgeInterface: {bridge}\n  interfaceNamePrefix: {prefix}\n\
         detectLocalMode: {detect_mode}\n\
         healthzBindAddress: {healthz}\n\
         hostnameOverride: {hostname}\n\
         iptables:\n  localhostNodePorts: {localhost}\n  masqueradeAll: {masquerade_all}\n  \
         masqueradeBit: {bit}\n  minSyncPeriod: {min_sync}\n  syncPeriod: {sync}\n\
         ipvs:\n  {drain}excludeCIDRs:{exclude}\n  minSyncPeriod: {min_sync}\n  scheduler: {scheduler}\n  \
         {stats}strictARP: {strict_arp}\n  syncPeriod: {sync}\n  tcpFinTimeout: {tcpfin}\n  \
         tcpTimeout: {tcp}\n  udpTimeout: {udp}\n\
         kind: KubeProxyConfiguration\n\
         logging:\n  verbosity: {verbosity}\n\
         metricsBindAddress: {metrics}\n\
         mode: {mode}\n\
         nodePortAddresses:{node_ports}\n\
         oomScoreAdj: {oom}\n",
        hard_fail = s.bind_address_hard_fail,
        kubeconfig = quoted(
            &s.kubeconfig
                .as_ref()
                .map(|k| k.display().to_string())
                .unwrap_or_default()
        ),
        cluster_cidr = quoted(&cluster_cidrs.join(",")),
        per_core = s.conntrack_per_core.0,
        min = s.conntrack_per_core.1,
        liberal = c.tcp_be_liberal,
        close_wait = secs(c.tcp_close_wait_timeout),
        established = secs(c.tcp_established_timeout),
        udp_stream = secs(c.udp_stream_timeout),
        udp_timeout = secs(c.udp_timeout),
        bridge = quoted(bridge),
        prefix = quoted(prefix),
        healthz = endpoint(s.healthz_bind_address),
        hostname = quoted(s.hostname_override.as_deref().unwrap_or_default()),
        localhost = s.localhost_node_ports,
        masquerade_all = d.masquerade_all,
        bit = d.masquerade_bit,
        min_sync = go_duration(s.min_sync_period),
        sync = go_duration(s.sync_period),
        exclude = list(
            "  ",
            s.exclude_cidrs.iter().map(ToString::to_string).collect()
        ),
        scheduler = d.scheduler,
        strict_arp = s.strict_arp,
        tcpfin = go_duration(tcpfin),
        tcp = go_duration(tcp),
        udp = go_duration(udp),
        verbosity = s.verbosity,
        metrics = endpoint(s.metrics_bind_address),
        node_ports = list("", node_ports),
        oom = s.oom_score_adj,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    #[test]
    fn durations_print_as_go_prints_them() {
        for (d, go) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(86400), "24h0m0s"),
        ] {
            assert_eq!(go_duration(d), go);
            assert_eq!(
                kubeproxy_config::GoDuration::parse(go).map(|g| g.0),
                Some(d)
            );
        }
    }

    /// What is written reads back, strictly, to the same effective settings.
    #[test]
    fn the_written_file_reads_back_to_the_same_settings() {
        let flags = [
            "kube-ipvs-proxy",
            "--proxy-mode=ipvs",
            "--ipvs-scheduler=lc",
            "--ipvs-sync-period=45s",
            "--ipvs-min-sync-period=1s",
            "--cluster-cidr=10.244.0.0/16,fd00:244::/56",
            "--nodeport-addresses=192.168.50.0/24,primary",
            "--ipvs-exclude-cidrs=192.0.2.0/24",
            "--ipvs-strict-arp",
            "--conntrack-max-per-core=0",
            "--conntrack-udp-timeout=45s",
            "--oom-score-adj=-500",
            "--hostname-override=worker-1",
            "--v=4",
            "--ipvs-stats=backends",
            "--ipvs-drain-timeout=2m",
        ];
        let first = Settings::resolve(&Cli::try_parse_args(flags).expect("flags")).expect("valid");
        let text = render(&first);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.conf");
        std::fs::write(&path, &text).expect("write");
        let decoded = kubeproxy_config::KubeProxyConfiguration::load(&path).expect(&text);
        assert!(decoded.lenient.is_empty(), "{:?}", decoded.lenient);
        let path = path.display().to_string();
        let second = Settings::resolve(
            &Cli::try_parse_args(["kube-ipvs-proxy", "--config", path.as_str()]).expect("flags"),
        )
        .expect("valid");
        assert_eq!(first.summary(), second.summary(), "{text}");
        assert_eq!(second.hostname_override.as_deref(), Some("worker-1"));
        assert_eq!(second.log_filter(), "debug");
        assert_eq!(second.ipvs_stats, StatsDetail::Backends);
        assert_eq!(second.drain_timeout, Duration::from_secs(120));
    }
}

//! Command-line flags. Names follow kube-proxy's where kube-proxy has the flag.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::kubeproxy_config::GoDuration;

/// `--version`: version, git commit and what is compiled in.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GIT_COMMIT"),
    "; Kubernetes API v1_33 and newer; sources: kubernetes, directory; proxy modes: ipvs, iptables)"
);

/// Output format of `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// `ipvsadm -Sn`, `ip address add`, `ipset save` and `iptables-restore` blocks.
    Text,
    /// The same as one JSON document.
    Json,
}

/// A port range as the API server's `--service-node-port-range` takes it:
/// `N-M`, `N+K` (N through N+K) or a single port.
fn port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    let range = if let Some((low, high)) = s.split_once('-') {
        port(low)?..=port(high)?
    } else if let Some((base, size)) = s.split_once('+') {
        let base = port(base)?;
        let size: u16 = size
            .trim()
            .parse()
            .map_err(|_| format!("{size:?} is not a number of ports"))?;
        base..=base
            .checked_add(size)
            .ok_or_else(|| format!("{s:?} ends beyond port 65535"))?
    } else {
        let p = port(s)?;
        p..=p
    };
    if range.is_empty() {
        return Err(format!("{s:?} is empty: its first port is above its last"));
    }
    Ok(range)
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    GoDuration::parse(s)
        .map(|d| d.0)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 1m0s or 500ms"))
}

/// A Kubernetes service proxy that programs the kernel's IPVS load balancer, with kube-proxy's
/// IPVS-mode semantics.
#[derive(Debug, Parser)]
#[command(name = "kube-ipvs-proxy", version = VERSION, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// Read kube-proxy's configuration file (KubeProxyConfiguration,
    /// kubeproxy.config.k8s.io/v1alpha1). Flags given on the command line override its
    /// fields. An unknown field or a wrong type is an error (exit code 2).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Read Services, EndpointSlices and optionally Nodes from the YAML/JSON files under DIR
    /// (several documents per file, `kind: List` too) instead of an API server. DIR is
    /// re-read when its files change.
    #[arg(long, value_name = "DIR")]
    pub(crate) from_dir: Option<PathBuf>,

    /// Print the desired kernel state once the first complete listing has arrived, then exit
    /// without touching the kernel.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Remove everything this proxy programs on the node (the IPVS virtual servers it owns,
    /// kube-ipvs0, its iptables chains and jumps, kube-proxy's ipsets), then exit 0. Other IPVS
    /// services and chains are left alone; running it twice is harmless.
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) cleanup: bool,

    /// Format of --dry-run.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,

    /// This node's name (default: $NODE_NAME, else the host name), trimmed and lower-cased.
    /// Endpoints on this node are local; with --from-dir it picks the Node object to use.
    #[arg(long, value_name = "NAME")]
    pub(crate) hostname_override: Option<String>,

    /// This node's primary IP, once per family; overrides the Node object's addresses.
    #[arg(long = "node-ip", value_name = "IP")]
    pub(crate) node_ips: Vec<IpAddr>,

    /// kubeconfig file for the API server (default: in-cluster configuration, then
    /// $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,

    /// Proxy mode: `ipvs` (default) or `iptables` (kube-proxy's iptables mode). With `ipvs`,
    /// a node without IPVS (module ip_vs or a scheduler's missing) falls back to `iptables`,
    /// with a warning, a Node Event and kube_ipvs_proxy_proxy_mode{mode="iptables"}.
    #[arg(long, value_name = "MODE")]
    pub(crate) proxy_mode: Option<String>,

    /// With proxy mode `ipvs`, exit with an error when IPVS is missing instead of falling back
    /// to the iptables mode.
    #[arg(long)]
    pub(crate) no_fallback: bool,

    /// Default IPVS scheduler (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf,
    /// twos). A Service can override it with the annotation
    /// kube-ipvs-proxy.io/ipvs-scheduler. Default: rr.
    #[arg(long, value_name = "NAME")]
    pub(crate) ipvs_scheduler: Option<String>,

    /// Longest interval between two full syncs of the kernel state. Default: 30s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ipvs_sync_period: Option<std::time::Duration>,

    /// Shortest interval between two syncs, however often objects change. Default: 0s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ipvs_min_sync_period: Option<std::time::Duration>,

    /// The pods' CIDRs, comma separated (one per family): traffic to cluster IPs from outside
    /// them is masqueraded.
    #[arg(long, value_name = "CIDRS")]
    pub(crate) cluster_cidr: Option<String>,

    /// Masquerade all traffic to cluster IPs.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) masquerade_all: Option<bool>,

    /// Node addresses that accept NodePort traffic: comma-separated CIDRs and/or `primary`.
    /// Default: every local address.
    #[arg(long, value_name = "CIDRS")]
    pub(crate) nodeport_addresses: Option<String>,

    /// Address and port of the /healthz and /livez endpoint. Default: 0.0.0.0:10256.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) healthz_bind_address: Option<SocketAddr>,

    /// Address and port of the /metrics endpoint. Default: 127.0.0.1:10249.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) metrics_bind_address: Option<SocketAddr>,

    /// Set arp_ignore=1 and arp_announce=2 so the node does not answer ARP for addresses on
    /// kube-ipvs0.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) ipvs_strict_arp: Option<bool>,

    /// Comma-separated CIDRs whose IPVS virtual servers are never deleted (keepalived, other
    /// load balancers on the node).
    #[arg(long, value_name = "CIDRS")]
    pub(crate) ipvs_exclude_cidrs: Option<String>,

    /// The cluster's NodePort range, as given to the API server (`N-M`, `N+K` or `N`;
    /// default 30000-32767). Virtual servers on node addresses with a port in it are this
    /// proxy's: deleted when no Service wants them any more.
    #[arg(long, value_name = "RANGE", value_parser = port_range)]
    pub(crate) service_node_port_range: Option<RangeInclusive<u16>>,

    /// IPVS idle timeout of TCP connections; 0 keeps the kernel's (900s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ipvs_tcp_timeout: Option<std::time::Duration>,

    /// IPVS timeout of TCP connections after FIN; 0 keeps the kernel's (120s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ipvs_tcpfin_timeout: Option<std::time::Duration>,

    /// IPVS timeout of UDP flows; 0 keeps the kernel's (300s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ipvs_udp_timeout: Option<std::time::Duration>,

    /// Also implement Services labelled service.kubernetes.io/service-proxy-name=NAME (without
    /// this flag, Services carrying that label are left to the proxy they name).
    #[arg(long, value_name = "NAME")]
    pub(crate) service_proxy_name: Option<String>,
}

//! Command-line flags. Names follow kube-proxy's where kube-proxy has the flag.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use kubeproxy_config::GoDuration;
use model::ObjectId;

/// `--version`: version, git commit and what is compiled in.
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {}; Kubernetes API v1_33 and newer; sources: kubernetes, directory; proxy \
         modes: ipvs, iptables)",
        build_info::VERSION,
        build_info::COMMIT
    )
});

/// Output format of `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
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

/// A Go duration, as kube-proxy's duration flags take it.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    GoDuration::parse(s)
        .map(|d| d.0)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 1m0s or 500ms"))
}

/// A Kubernetes service proxy that programs the kernel's IPVS load balancer, with kube-proxy's
/// IPVS-mode semantics.
///
/// Every flag of kube-proxy is accepted. As in kube-proxy, with --config the flags that set a
/// field of the file are ignored (with a warning naming them); --hostname-override and the
/// logging flags still apply.
#[derive(Debug, Parser)]
#[command(name = "kube-ipvs-proxy", version = VERSION.as_str(), about, max_term_width = 100)]
// As with kube-proxy's flags (pflag), a flag given twice takes its last value.
#[command(args_override_self = true)]
pub struct Cli {
    /// Read kube-proxy's configuration file (KubeProxyConfiguration,
    /// kubeproxy.config.k8s.io/v1alpha1). As in kube-proxy, the file replaces the flags that
    /// set its fields. Unknown or duplicate fields are dropped with one warning; a wrong type
    /// is an error (exit code 2).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Read Services, EndpointSlices and optionally Nodes from the YAML/JSON files under DIR
    /// (several documents per file, `kind: List` too) instead of an API server. DIR is
    /// re-read when its files change.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,

    /// Print the desired kernel state once the first complete listing has arrived, then exit
    /// without touching the kernel.
    #[arg(long)]
    pub dry_run: bool,

    /// With --dry-run, in IPVS mode: read this node's IPVS table, kube-ipvs0, ipsets and
    /// iptables chains (nothing is written) and print the operations a takeover's first sync
    /// would apply. Exits 0 when there are none, 1 when there are, 2 when the node cannot be read.
    #[arg(long, requires = "dry_run", conflicts_with = "output")]
    pub diff: bool,

    /// Remove everything this proxy programs on the node (the IPVS virtual servers it owns,
    /// kube-ipvs0, its iptables chains and jumps, kube-proxy's ipsets), then exit 0. Other IPVS
    /// services and chains are left alone; running it twice is harmless.
    #[arg(long, conflicts_with = "dry_run", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false")]
    pub cleanup: bool,

    /// Set the conntrack sysctls (conntrack.*), which need full root privileges, then exit 0.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub init_only: bool,

    /// Format of --dry-run and explain.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// This node's name (default: $NODE_NAME, else the host name), trimmed and lower-cased.
    /// Endpoints on this node are local; with --from-dir it picks the Node object to use.
    /// Applies with --config too.
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,

    /// This node's primary IP, once per family; overrides the Node object's addresses.
    #[arg(long = "node-ip", value_name = "IP")]
    pub node_ips: Vec<IpAddr>,

    /// With proxy mode `ipvs`, exit with an error when IPVS is missing instead of falling back
    /// to the iptables mode.
    #[arg(long)]
    pub no_fallback: bool,

    /// The cluster's NodePort range, as given to the API server (`N-M`, `N+K` or `N`;
    /// default 30000-32767). Virtual servers on node addresses with a port in it are this
    /// proxy's: deleted when no Service wants them any more.
    #[arg(long, value_name = "RANGE", value_parser = port_range)]
    pub service_node_port_range: Option<RangeInclusive<u16>>,

    /// IPVS traffic counters in /metrics (IPVS mode): `services`, per virtual server of each
    /// Service port, or `backends`, also per real server with its active and inactive
    /// connections (one more kernel read per virtual server, and a series per endpoint).
    /// Ours, not kube-proxy's; the file's field is `ipvs.stats`. Default: services.
    #[arg(long, value_name = "DETAIL", value_parser = crate::stats_detail)]
    pub ipvs_stats: Option<dataplane::ipvs::StatsDetail>,

    /// How long a leaving TCP real server drains (weight 0, no new connections) before it is
    /// deleted with connections left; it goes as soon as it has no active connection. A
    /// Service's annotation kube-ipvs-proxy.io/drain-timeout-seconds overrides it. Ours; the
    /// file's field is `ipvs.drainTimeout`. Default: 1m.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_drain_timeout: Option<std::time::Duration>,

    /// Also implement Services labelled service.kubernetes.io/service-proxy-name=NAME (without
    /// this flag, Services carrying that label are left to the proxy they name).
    #[arg(long, value_name = "NAME")]
    pub service_proxy_name: Option<String>,

    /// kube-proxy's flags that set a field of its configuration file.
    #[command(
        flatten,
        next_help_heading = "kube-proxy flags (ignored with --config)"
    )]
    pub kube_proxy: KubeProxyFlags,

    /// kube-proxy's flags that apply with or without --config.
    #[command(flatten, next_help_heading = "kube-proxy flags (also with --config)")]
    pub always: AlwaysFlags,

    /// The long names of the [`KubeProxyFlags`] given on the command line.
    #[arg(skip)]
    pub given: Vec<String>,

    /// A subcommand instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses `args` (the program name first), also noting which of kube-proxy's
    /// file-setting flags were given.
    ///
    /// # Errors
    /// clap's error, to be shown as it is.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        // The daemon's flags also after a subcommand: `explain NS/SVC --from-dir DIR`.
        let command = Cli::command().mut_args(|a| a.global(true));
        let matches = command.clone().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.given = given(&command, &matches, "KubeProxyFlags");
        Ok(cli)
    }
}

/// The long names of the arguments of `group` given on the command line.
fn given(command: &clap::Command, matches: &ArgMatches, group: &str) -> Vec<String> {
    let Some(group) = command.get_groups().find(|g| g.get_id() == group) else {
        return Vec::new();
    };
    group
        .get_args()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|id| command.get_arguments().find(|a| a.get_id() == id))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// kube-proxy's flags that set a field of `KubeProxyConfiguration` (its `AddFlags`): used
/// only without `--config`, as in kube-proxy.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeProxyFlags {
    /// kubeconfig file for the API server (default: the in-cluster configuration, as
    /// kube-proxy; the daemon does not read $KUBECONFIG or ~/.kube/config, explain does).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Proxy mode: `ipvs` (default) or `iptables` (kube-proxy's iptables mode). With `ipvs`,
    /// a node without IPVS (module ip_vs or a scheduler's missing) falls back to `iptables`,
    /// with a warning, a Node Event and kube_ipvs_proxy_proxy_mode{mode="iptables"}.
    #[arg(long, value_name = "MODE")]
    pub proxy_mode: Option<String>,

    /// Default IPVS scheduler (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf,
    /// twos). A Service can override it with the annotation
    /// kube-ipvs-proxy.io/ipvs-scheduler. Default: rr.
    #[arg(long, value_name = "NAME")]
    pub ipvs_scheduler: Option<String>,

    /// Longest interval between two full syncs of the kernel state, in mode ipvs. Default: 30s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_sync_period: Option<std::time::Duration>,

    /// Shortest interval between two syncs, however often objects change, in mode ipvs.
    /// Default: 0s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_min_sync_period: Option<std::time::Duration>,

    /// As --ipvs-sync-period, in mode iptables.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub iptables_sync_period: Option<std::time::Duration>,

    /// As --ipvs-min-sync-period, in mode iptables.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub iptables_min_sync_period: Option<std::time::Duration>,

    /// The pods' CIDRs, comma separated (one per family): traffic to cluster IPs from outside
    /// them is masqueraded.
    #[arg(long, value_name = "CIDRS")]
    pub cluster_cidr: Option<String>,

    /// How local traffic is told apart: ClusterCIDR (default), BridgeInterface,
    /// InterfaceNamePrefix.
    #[arg(long, value_name = "MODE")]
    pub detect_local_mode: Option<String>,

    /// The bridge of --detect-local-mode BridgeInterface.
    #[arg(long, value_name = "NAME")]
    pub pod_bridge_interface: Option<String>,

    /// The interface name prefix of --detect-local-mode InterfaceNamePrefix.
    #[arg(long, value_name = "PREFIX")]
    pub pod_interface_name_prefix: Option<String>,

    /// Masquerade all traffic to cluster IPs.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub masquerade_all: Option<bool>,

    /// The bit of the fwmark that marks packets to masquerade (0-31). Default: 14.
    #[arg(long, value_name = "BIT")]
    pub iptables_masquerade_bit: Option<i32>,

    /// Mode iptables: IPv4 NodePorts also answer on 127.0.0.0/8. Default: true.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub iptables_localhost_nodeports: Option<bool>,

    /// Node addresses that accept NodePort traffic: comma-separated CIDRs and/or `primary`.
    /// Default: every local address.
    #[arg(long, value_name = "CIDRS")]
    pub nodeport_addresses: Option<String>,

    /// This node's primary IP (kube-proxy's name for it; nothing is bound to it).
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<IpAddr>,

    /// Address (and port) of the /healthz and /livez endpoint; empty disables it.
    /// Default: 0.0.0.0:10256.
    #[arg(long, value_name = "ADDR:PORT")]
    pub healthz_bind_address: Option<String>,

    /// Address (and port) of the /metrics endpoint; empty disables it. Default:
    /// 127.0.0.1:10249.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_bind_address: Option<String>,

    /// Deprecated in kube-proxy: the healthz port when --healthz-bind-address has none; 0
    /// disables the endpoint.
    #[arg(long, value_name = "PORT")]
    pub healthz_port: Option<u16>,

    /// Deprecated in kube-proxy: the metrics port when --metrics-bind-address has none; 0
    /// disables the endpoint.
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,

    /// Exit when the healthz or metrics address cannot be bound, instead of retrying it while
    /// syncing goes on.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub bind_address_hard_fail: Option<bool>,

    /// Set arp_ignore=1 and arp_announce=2 so the node does not answer ARP for addresses on
    /// kube-ipvs0.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub ipvs_strict_arp: Option<bool>,

    /// Comma-separated CIDRs whose IPVS virtual servers are never deleted (keepalived, other
    /// load balancers on the node).
    #[arg(long, value_name = "CIDRS")]
    pub ipvs_exclude_cidrs: Option<String>,

    /// IPVS idle timeout of TCP connections; 0 keeps the kernel's (900s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_tcp_timeout: Option<std::time::Duration>,

    /// IPVS timeout of TCP connections after FIN; 0 keeps the kernel's (120s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_tcpfin_timeout: Option<std::time::Duration>,

    /// IPVS timeout of UDP flows; 0 keeps the kernel's (300s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ipvs_udp_timeout: Option<std::time::Duration>,

    /// oom_score_adj of this process, -1000 to 1000. Default: -999.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,

    /// nf_conntrack_max is this times the CPU count (at least --conntrack-min); 0 leaves it
    /// alone. Default: 32768.
    #[arg(long, value_name = "N")]
    pub conntrack_max_per_core: Option<i32>,

    /// The least nf_conntrack_max. Default: 131072.
    #[arg(long, value_name = "N")]
    pub conntrack_min: Option<i32>,

    /// nf_conntrack_tcp_timeout_established; 0 leaves it alone. Default: 24h0m0s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub conntrack_tcp_timeout_established: Option<std::time::Duration>,

    /// nf_conntrack_tcp_timeout_close_wait; 0 leaves it alone. Default: 1h0m0s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub conntrack_tcp_timeout_close_wait: Option<std::time::Duration>,

    /// Set nf_conntrack_tcp_be_liberal to 1.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub conntrack_tcp_be_liberal: Option<bool>,

    /// nf_conntrack_udp_timeout; 0 leaves it alone.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub conntrack_udp_timeout: Option<std::time::Duration>,

    /// nf_conntrack_udp_timeout_stream; 0 leaves it alone.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub conntrack_udp_timeout_stream: Option<std::time::Duration>,

    /// Accepted, not honoured (warned): API requests are not rate limited.
    #[arg(long, value_name = "QPS")]
    pub kube_api_qps: Option<f32>,

    /// Accepted, not honoured (warned): API requests are not rate limited.
    #[arg(long, value_name = "N")]
    pub kube_api_burst: Option<i32>,

    /// Accepted, not honoured (warned): the API is read as JSON.
    #[arg(long, value_name = "TYPE")]
    pub kube_api_content_type: Option<String>,

    /// Accepted, not honoured (warned): kube-proxy's feature gates (key=value,...).
    #[arg(long, value_name = "GATES")]
    pub feature_gates: Option<String>,

    /// Accepted, not honoured (warned): there is no /debug/pprof.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub profiling: Option<bool>,

    /// Accepted, not honoured (warned): no metric is hidden.
    #[arg(long, value_name = "VERSION")]
    pub show_hidden_metrics_for_version: Option<String>,

    /// Accepted, not honoured (warned): objects are watched, never re-listed on a timer.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub config_sync_period: Option<std::time::Duration>,
}

/// kube-proxy's flags that apply with or without `--config`: the logging flags (its
/// `logsapi.AddFlags`), and the few kube-proxy reads outside the file.
#[derive(Debug, Clone, Default, Args)]
pub struct AlwaysFlags {
    /// Log verbosity as kube-proxy's: 0-2 info, 3-4 debug, 5 and more trace. RUST_LOG, when
    /// set, wins.
    #[arg(short = 'v', long = "v", value_name = "LEVEL")]
    pub verbosity: Option<u32>,

    /// Accepted, not honoured (warned): per-file verbosity; use RUST_LOG.
    #[arg(long, value_name = "PATTERNS")]
    pub vmodule: Option<String>,

    /// Accepted, not honoured (warned): logs are text.
    #[arg(long, value_name = "FORMAT")]
    pub logging_format: Option<String>,

    /// Accepted, not honoured (warned): logs are written at once.
    #[arg(long, value_name = "DURATION")]
    pub log_flush_frequency: Option<String>,

    /// Accepted, not honoured (warned): every log line goes to stderr.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub log_text_split_stream: Option<bool>,

    /// Accepted, not honoured (warned).
    #[arg(long, value_name = "SIZE")]
    pub log_text_info_buffer_size: Option<String>,

    /// Accepted, not honoured (warned): every log line goes to stderr.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub log_json_split_stream: Option<bool>,

    /// Accepted, not honoured (warned).
    #[arg(long, value_name = "SIZE")]
    pub log_json_info_buffer_size: Option<String>,

    /// The API server's URL, over the kubeconfig's server; without --kubeconfig, that
    /// server without credentials (as kube-proxy).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,

    /// Write the effective configuration (defaults and flags) to FILE as a
    /// KubeProxyConfiguration, then exit.
    #[arg(long, value_name = "FILE")]
    pub write_config_to: Option<PathBuf>,

    /// Accepted, not honoured (warned): cAdvisor's, which kube-proxy links.
    #[arg(long, value_name = "FILE")]
    pub boot_id_file: Option<String>,

    /// Accepted, not honoured (warned): cAdvisor's, which kube-proxy links.
    #[arg(long, value_name = "FILE")]
    pub machine_id_file: Option<String>,
}

/// The daemon's subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Why a Service does (not) reach its endpoints: per family and port, its virtual servers
    /// and real servers, every endpoint left out with kube-proxy's reason, and the ipsets and
    /// rules that admit or drop traffic. Reads --from-dir DIR, else the cluster (kubeconfig
    /// or in-cluster), with the daemon's other flags and --config; --output json for scripts.
    Explain(ExplainArgs),
}

/// `explain`'s own arguments; the source, node and configuration flags are the daemon's.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The Service, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/SERVICE", value_parser = service_id)]
    pub service: ObjectId,

    /// Also read this node's kernel, changing nothing (root, IPVS mode): NodePorts on the
    /// interfaces' addresses as the daemon sees them, and every difference between the
    /// desired state and the Service's IPVS virtual servers, kube-ipvs0 addresses and ipset
    /// entries.
    #[arg(long)]
    pub live: bool,
}

fn service_id(s: &str) -> Result<ObjectId, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectId::new(ns, name))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/SERVICE")),
    }
}

/// The daemon's flags that make no sense with `explain`.
pub fn conflicting_flag(cli: &Cli) -> Option<&'static str> {
    [
        (cli.dry_run, "--dry-run"),
        (cli.cleanup, "--cleanup"),
        (cli.init_only, "--init-only"),
        (cli.always.write_config_to.is_some(), "--write-config-to"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

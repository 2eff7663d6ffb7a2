//! The effective settings: built-in defaults, overridden by the configuration file, overridden
//! by command-line flags; validated once, here. [`cli`] holds the flags and
//! [`write_config`] the file `--write-config-to` writes.

pub mod cli;
mod unhonoured;
pub mod write_config;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use dataplane::ipvs::StatsDetail;
use desired::{Config, LocalDetector, NodePortAddresses};
use ipnet::IpNet;
use kubeproxy_config::{ConfigError, GoDuration, KubeProxyConfiguration};
use model::Scheduler;

use crate::cli::{Cli, KubeProxyFlags};
use dataplane::ProxyMode;

/// A setting that cannot be used; the daemon exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file is unusable.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// A value is invalid.
    #[error("{setting}: {message}")]
    Invalid {
        /// The flag or field.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--proxy-mode` / `mode`: the configured mode (IPVS may still fall back to iptables).
    pub mode: ProxyMode,
    /// `--no-fallback`: exit instead of falling back from IPVS to iptables.
    pub no_fallback: bool,
    /// `iptables.localhostNodePorts` (default true): in iptables mode, IPv4 NodePorts also
    /// answer on 127.0.0.0/8.
    pub localhost_node_ports: bool,
    /// The desired-state configuration.
    pub desired: Config,
    /// `--hostname-override` / `hostnameOverride`.
    pub hostname_override: Option<String>,
    /// `--node-ip`, then `--bind-address` / `bindAddress` when it names an address.
    pub node_ips: Vec<IpAddr>,
    /// `--kubeconfig` / `clientConnection.kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--master`: the API server's URL, over the kubeconfig's.
    pub master: Option<String>,
    /// `--ipvs-sync-period` / `ipvs.syncPeriod`.
    pub sync_period: Duration,
    /// `--ipvs-min-sync-period` / `ipvs.minSyncPeriod`.
    pub min_sync_period: Duration,
    /// `--ipvs-exclude-cidrs` / `ipvs.excludeCIDRs`.
    pub exclude_cidrs: Vec<IpNet>,
    /// `--ipvs-strict-arp` / `ipvs.strictARP`.
    pub strict_arp: bool,
    /// `--service-node-port-range`: which virtual servers on node addresses are ours.
    pub node_port_range: RangeInclusive<u16>,
    /// `--ipvs-tcp-timeout`, `--ipvs-tcpfin-timeout`, `--ipvs-udp-timeout` (zero: keep the
    /// kernel's).
    pub ipvs_timeouts: [Duration; 3],
    /// `--healthz-bind-address` / `healthzBindAddress`; `None`: not served.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `--metrics-bind-address` / `metricsBindAddress`; `None`: not served.
    pub metrics_bind_address: Option<SocketAddr>,
    /// `--bind-address-hard-fail` / `bindAddressHardFail`: exit when an endpoint's address
    /// cannot be bound, instead of retrying it.
    pub bind_address_hard_fail: bool,
    /// `--conntrack-*` / `conntrack.*`.
    pub conntrack: hostnet::ConntrackSettings,
    /// `conntrack.maxPerCore` and `conntrack.min`, which gave `conntrack.max`.
    pub conntrack_per_core: (i32, i32),
    /// `--oom-score-adj` / `oomScoreAdj`.
    pub oom_score_adj: i32,
    /// `-v` / `logging.verbosity`.
    pub verbosity: u32,
    /// `--ipvs-stats` / `ipvs.stats` (ours): how much of the IPVS counters `/metrics` shows.
    pub ipvs_stats: StatsDetail,
    /// `--ipvs-drain-timeout` / `ipvs.drainTimeout` (ours): how long a leaving TCP real
    /// server may drain with connections left.
    pub drain_timeout: Duration,
    /// `--service-proxy-name`.
    pub service_proxy_name: Option<String>,
    /// What the daemon logs as warnings at start: settings accepted but not honoured,
    /// flags ignored because of `--config`, fields dropped by lenient decoding.
    pub warnings: Vec<String>,
}

fn cidrs(setting: &'static str, items: &[String]) -> Result<Vec<IpNet>, SettingsError> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| invalid(setting, format!("{s:?} is not a CIDR")))
        })
        .collect()
}

/// `--ipvs-stats` / `ipvs.stats`: `services` or `backends`.
pub fn stats_detail(s: &str) -> Result<StatsDetail, String> {
    match s {
        "services" => Ok(StatsDetail::Services),
        "backends" => Ok(StatsDetail::Backends),
        _ => Err(format!("{s:?} is neither services nor backends")),
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',').map(str::to_owned).collect()
}

/// An endpoint's address as kube-proxy reads it: empty disables the endpoint, an IP alone
/// gets `port` (its `AppendPortIfNeeded`); a port of 0 (`--healthz-port=0`) disables it.
fn bind_address(
    setting: &'static str,
    value: &str,
    port: u16,
) -> Result<Option<SocketAddr>, SettingsError> {
    if value.is_empty() || port == 0 {
        return Ok(None);
    }
    if let Ok(address) = value.parse::<SocketAddr>() {
        return Ok(Some(address));
    }
    value
        .parse::<IpAddr>()
        .map(|ip| Some(SocketAddr::new(ip, port)))
        .map_err(|_| invalid(setting, format!("{value:?} is not an IP or IP:port")))
}

/// A duration of the file or a flag; in the file a zero means "the default", as in
/// kube-proxy's defaulting (kubeadm writes `syncPeriod: 0s`).
fn period(flag: Option<Duration>, file: Option<GoDuration>, default: Duration) -> Duration {
    flag.or(file.map(|d| d.0).filter(|d| !d.is_zero()))
        .unwrap_or(default)
}

/// A conntrack timeout: the flag, else the field (where zero, unlike [`period`], means
/// "leave the kernel's"), else kube-proxy's default; in whole seconds, `None` for zero.
fn conntrack_timeout(
    flag: Option<Duration>,
    file: Option<GoDuration>,
    default: Duration,
) -> Option<u64> {
    let d = flag.or(file.map(|d| d.0)).unwrap_or(default);
    Some(d.as_secs()).filter(|s| *s > 0)
}

/// The desired state's settings: the scheduler, the local-traffic detector,
/// `nodePortAddresses` and masquerading.
fn desired_config(
    flags: &KubeProxyFlags,
    file: &KubeProxyConfiguration,
    warnings: &mut Vec<String>,
) -> Result<Config, SettingsError> {
    let (ipvs, iptables, linux) = (
        file.ipvs.as_ref(),
        file.iptables.as_ref(),
        file.linux.as_ref(),
    );
    let scheduler = match flags
        .ipvs_scheduler
        .clone()
        .or_else(|| ipvs.and_then(|i| i.scheduler.clone()))
        .filter(|s| !s.is_empty())
    {
        None => Scheduler::Rr,
        Some(s) => s.parse().map_err(|e: model::scheduler::UnknownScheduler| {
            invalid("ipvs.scheduler", e.to_string())
        })?,
    };
    let masquerade_bit = flags
        .iptables_masquerade_bit
        .or_else(|| iptables.and_then(|t| t.masquerade_bit))
        .unwrap_or(14);
    let masquerade_bit = u8::try_from(masquerade_bit)
        .ok()
        .filter(|b| *b <= 31)
        .ok_or_else(|| {
            invalid(
                "iptables.masqueradeBit",
                format!("{masquerade_bit} is not in 0-31"),
            )
        })?;
    let masquerade_all = flags
        .masquerade_all
        .or_else(|| linux.and_then(|l| l.masquerade_all))
        .or_else(|| iptables.and_then(|t| t.masquerade_all))
        .unwrap_or(false);
    Ok(Config {
        scheduler,
        masquerade_all,
        local_detector: local_detector(flags, file, warnings)?,
        node_port_addresses: node_port_addresses(flags, file)?,
        masquerade_bit,
        random_fully: true,
    })
}

/// `syncPeriod` and `minSyncPeriod`: the running mode's flags, else its section of the
/// file, else the top-level fields, else kube-proxy's defaults (30 s and 0).
fn sync_periods(
    mode: ProxyMode,
    flags: &KubeProxyFlags,
    file: &KubeProxyConfiguration,
) -> Result<(Duration, Duration), SettingsError> {
    let (section, flag_sync, flag_min_sync) = match mode {
        ProxyMode::Ipvs => (
            file.ipvs
                .as_ref()
                .map(|i| (i.sync_period, i.min_sync_period)),
            flags.ipvs_sync_period,
            flags.ipvs_min_sync_period,
        ),
        ProxyMode::Iptables => (
            file.iptables
                .as_ref()
                .map(|i| (i.sync_period, i.min_sync_period)),
            flags.iptables_sync_period,
            flags.iptables_min_sync_period,
        ),
    };
    let (mode_sync_period, mode_min_sync_period) = section.unwrap_or_default();
    let sync_period = period(
        flag_sync,
        mode_sync_period.or(file.sync_period),
        Duration::from_secs(30),
    );
    if sync_period.is_zero() {
        return Err(invalid("ipvs.syncPeriod", "must be greater than 0"));
    }
    let min_sync_period = period(
        flag_min_sync,
        mode_min_sync_period.or(file.min_sync_period),
        Duration::ZERO,
    );
    Ok((sync_period, min_sync_period))
}

/// kube-proxy's local-traffic detector: `detectLocalMode` with the CIDRs or interface it
/// needs (`NodeCIDR` is not honoured, and says so in `warnings`).
fn local_detector(
    flags: &KubeProxyFlags,
    file: &KubeProxyConfiguration,
    warnings: &mut Vec<String>,
) -> Result<LocalDetector, SettingsError> {
    let detect = file.detect_local.as_ref();
    let cluster_cidrs = match (&flags.cluster_cidr, &file.cluster_cidr) {
        (Some(list), _) => cidrs("clusterCIDR", &split(list))?,
        (None, Some(list)) if !list.is_empty() => cidrs("clusterCIDR", &split(list))?,
        (None, _) => cidrs(
            "detectLocal.clusterCIDRs",
            detect
                .and_then(|d| d.cluster_cidrs.as_deref())
                .unwrap_or_default(),
        )?,
    };
    let bridge = flags
        .pod_bridge_interface
        .clone()
        .or_else(|| detect.and_then(|d| d.bridge_interface.clone()))
        .filter(|s| !s.is_empty());
    let prefix = flags
        .pod_interface_name_prefix
        .clone()
        .or_else(|| detect.and_then(|d| d.interface_name_prefix.clone()))
        .filter(|s| !s.is_empty());
    let detect_mode = flags
        .detect_local_mode
        .clone()
        .or(file.detect_local_mode.clone())
        .unwrap_or_default();
    Ok(match detect_mode.as_str() {
        "" | "ClusterCIDR" if cluster_cidrs.is_empty() => LocalDetector::None,
        "" | "ClusterCIDR" => LocalDetector::ClusterCidr(cluster_cidrs),
        "NodeCIDR" => {
            warnings.push(
                "detectLocalMode NodeCIDR is not honoured: no traffic is told apart as \
                 local (as ClusterCIDR without clusterCIDR)"
                    .to_owned(),
            );
            LocalDetector::None
        }
        "BridgeInterface" => LocalDetector::BridgeInterface(bridge.ok_or_else(|| {
            invalid(
                "detectLocal.bridgeInterface",
                "required by detectLocalMode BridgeInterface",
            )
        })?),
        "InterfaceNamePrefix" => LocalDetector::InterfaceNamePrefix(prefix.ok_or_else(|| {
            invalid(
                "detectLocal.interfaceNamePrefix",
                "required by detectLocalMode InterfaceNamePrefix",
            )
        })?),
        other => {
            return Err(invalid(
                "detectLocalMode",
                format!(
                    "{other:?} is not a mode (ClusterCIDR, NodeCIDR, BridgeInterface, \
                     InterfaceNamePrefix)"
                ),
            ));
        }
    })
}

/// `nodePortAddresses`: every address, or those in the CIDRs and/or the node's primary IPs.
fn node_port_addresses(
    flags: &KubeProxyFlags,
    file: &KubeProxyConfiguration,
) -> Result<NodePortAddresses, SettingsError> {
    let node_port_list = match &flags.nodeport_addresses {
        Some(list) => split(list),
        None => file.node_port_addresses.clone().unwrap_or_default(),
    };
    let primary = node_port_list.iter().any(|s| s.trim() == "primary");
    let npa_cidrs: Vec<String> = node_port_list
        .into_iter()
        .filter(|s| s.trim() != "primary")
        .collect();
    let npa_cidrs = cidrs("nodePortAddresses", &npa_cidrs)?;
    Ok(if npa_cidrs.is_empty() && !primary {
        NodePortAddresses::All
    } else {
        NodePortAddresses::Select {
            cidrs: npa_cidrs,
            primary,
        }
    })
}

/// The node's IPs and the addresses the daemon serves on.
struct Endpoints {
    node_ips: Vec<IpAddr>,
    healthz: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

/// The node's IPs (`--node-ip`, and `bindAddress` when it names one of a family not given),
/// and the healthz and metrics addresses, whose defaults follow `bindAddress`'s family.
fn endpoints(
    cli: &Cli,
    flags: &KubeProxyFlags,
    file: &KubeProxyConfiguration,
) -> Result<Endpoints, SettingsError> {
    // bindAddress is the node's primary IP; "0.0.0.0" or "::" says nothing.
    let bind_ip = match flags.bind_address {
        Some(ip) => Some(ip),
        None => match file.bind_address.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse::<IpAddr>()
                    .map_err(|_| invalid("bindAddress", format!("{s:?} is not an IP address")))?,
            ),
            None => None,
        },
    };
    let ipv6 = bind_ip.is_some_and(|ip| ip.is_ipv6());
    let mut node_ips = cli.node_ips.clone();
    if let Some(ip) = bind_ip
        .filter(|ip| !ip.is_unspecified() && !node_ips.iter().any(|n| n.is_ipv4() == ip.is_ipv4()))
    {
        node_ips.push(ip);
    }
    let endpoint = |setting,
                    flag: &Option<String>,
                    field: Option<String>,
                    port: Option<u16>,
                    all: &str,
                    default_port| {
        let value = flag
            .clone()
            .or(field.filter(|s| !s.is_empty()))
            .unwrap_or_else(|| format!("{all}:{default_port}"));
        bind_address(setting, &value, port.unwrap_or(default_port))
    };
    let healthz = endpoint(
        "healthzBindAddress",
        &flags.healthz_bind_address,
        file.healthz_bind_address.clone(),
        flags.healthz_port,
        if ipv6 { "[::]" } else { "0.0.0.0" },
        10256,
    )?;
    let metrics = endpoint(
        "metricsBindAddress",
        &flags.metrics_bind_address,
        file.metrics_bind_address.clone(),
        flags.metrics_port,
        if ipv6 { "[::1]" } else { "127.0.0.1" },
        10249,
    )?;
    Ok(Endpoints {
        node_ips,
        healthz,
        metrics,
    })
}

fn cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| hostnet::online_cpus(&t))
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
}

impl Settings {
    /// Merges defaults, the `--config` file and the flags with kube-proxy's precedence: with
    /// a file, the flags that set its fields are ignored (and named in a warning).
    ///
    /// # Errors
    /// [`SettingsError`] naming the setting.
    pub fn resolve(cli: &Cli) -> Result<Settings, SettingsError> {
        let (file, flags, mut warnings) = Self::sources(cli)?;
        warnings.extend(crate::unhonoured::warnings(&file, &flags, &cli.always));
        let desired = desired_config(&flags, &file, &mut warnings)?;
        let Endpoints {
            node_ips,
            healthz,
            metrics,
        } = endpoints(cli, &flags, &file)?;
        let mode = match (&flags.proxy_mode, &file.mode) {
            (Some(flag), _) => ProxyMode::parse(flag).map_err(|e| invalid("--proxy-mode", e))?,
            (None, Some(field)) => ProxyMode::parse(field).map_err(|e| invalid("mode", e))?,
            (None, None) => ProxyMode::Ipvs,
        };
        let (sync_period, min_sync_period) = sync_periods(mode, &flags, &file)?;
        let ipvs = file.ipvs.unwrap_or_default();
        let iptables = file.iptables.unwrap_or_default();
        let linux = file.linux.unwrap_or_default();
        let ipvs_stats = match (cli.ipvs_stats, &ipvs.stats) {
            (Some(detail), _) => detail,
            (None, Some(field)) => stats_detail(field).map_err(|e| invalid("ipvs.stats", e))?,
            (None, None) => StatsDetail::default(),
        };

        let exclude = match &flags.ipvs_exclude_cidrs {
            Some(list) => split(list),
            None => ipvs.exclude_cidrs.unwrap_or_default(),
        };
        let oom_score_adj = flags
            .oom_score_adj
            .or(file.oom_score_adj)
            .or(linux.oom_score_adj)
            .unwrap_or(-999);
        if !(-1000..=1000).contains(&oom_score_adj) {
            return Err(invalid(
                "oomScoreAdj",
                format!("{oom_score_adj} is not in -1000..=1000"),
            ));
        }
        let (conntrack, conntrack_per_core) =
            Self::conntrack(&flags, file.conntrack.or(linux.conntrack))?;
        let verbosity = cli.always.verbosity.or_else(|| {
            file.logging
                .as_ref()
                .and_then(|l| l.get("verbosity"))
                .and_then(serde_norway::Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
        });
        Ok(Settings {
            mode,
            no_fallback: cli.no_fallback,
            localhost_node_ports: flags
                .iptables_localhost_nodeports
                .or(iptables.localhost_node_ports)
                .unwrap_or(true),
            desired,
            hostname_override: cli
                .hostname_override
                .clone()
                .or(file.hostname_override)
                .filter(|h| !h.is_empty())
                .map(|h| h.trim().to_lowercase()),
            node_ips,
            kubeconfig: flags.kubeconfig.clone().or(file
                .client_connection
                .and_then(|c| c.kubeconfig)
                .filter(|k| !k.is_empty())
                .map(PathBuf::from)),
            master: cli.always.master.clone().filter(|m| !m.is_empty()),
            sync_period,
            min_sync_period,
            exclude_cidrs: cidrs("ipvs.excludeCIDRs", &exclude)?,
            strict_arp: flags.ipvs_strict_arp.or(ipvs.strict_arp).unwrap_or(false),
            node_port_range: cli
                .service_node_port_range
                .clone()
                .unwrap_or(reconcile::Ownership::DEFAULT_NODE_PORT_RANGE),
            ipvs_timeouts: [
                period(flags.ipvs_tcp_timeout, ipvs.tcp_timeout, Duration::ZERO),
                period(
                    flags.ipvs_tcpfin_timeout,
                    ipvs.tcp_fin_timeout,
                    Duration::ZERO,
                ),
                period(flags.ipvs_udp_timeout, ipvs.udp_timeout, Duration::ZERO),
            ],
            healthz_bind_address: healthz,
            metrics_bind_address: metrics,
            bind_address_hard_fail: flags
                .bind_address_hard_fail
                .or(file.bind_address_hard_fail)
                .unwrap_or(false),
            conntrack,
            conntrack_per_core,
            oom_score_adj,
            verbosity: verbosity.unwrap_or(0),
            ipvs_stats,
            drain_timeout: cli
                .ipvs_drain_timeout
                .or(ipvs.drain_timeout.map(|d| d.0))
                .unwrap_or(reconcile::Draining::DEFAULT_TIMEOUT),
            service_proxy_name: cli.service_proxy_name.clone(),
            warnings,
        })
    }

    /// The configuration file and the kube-proxy flags that count, with kube-proxy's
    /// precedence: with `--config`, the file (decoded strictly, else leniently with a
    /// warning) and none of the file-setting flags (named in a warning); without, the flags.
    fn sources(
        cli: &Cli,
    ) -> Result<(KubeProxyConfiguration, KubeProxyFlags, Vec<String>), SettingsError> {
        let mut warnings = Vec::new();
        let (file, flags) = match &cli.config {
            Some(path) => {
                let decoded = KubeProxyConfiguration::load(path)?;
                if !decoded.lenient.is_empty() {
                    warnings.push(format!(
                        "{}: using lenient decoding as strict decoding failed: unknown or duplicate \
                         field(s) {} (unknown fields are ignored, the last of duplicates is used)",
                        path.display(),
                        decoded.lenient.join(", ")
                    ));
                }
                if !cli.given.is_empty() {
                    warnings.push(format!(
                        "{} ignored: as in kube-proxy, these settings come from --config only",
                        cli.given.join(", ")
                    ));
                }
                (decoded.config, KubeProxyFlags::default())
            }
            None => (KubeProxyConfiguration::default(), cli.kube_proxy.clone()),
        };
        Ok((file, flags, warnings))
    }

    /// kube-proxy's conntrack settings and defaults (`maxPerCore` 32768, `min` 131072,
    /// `tcpEstablishedTimeout` 24h, `tcpCloseWaitTimeout` 1h, the rest left alone), with
    /// `maxPerCore` and `min`.
    fn conntrack(
        flags: &KubeProxyFlags,
        file: Option<kubeproxy_config::Conntrack>,
    ) -> Result<(hostnet::ConntrackSettings, (i32, i32)), SettingsError> {
        let file = file.unwrap_or_default();
        let max_per_core = flags
            .conntrack_max_per_core
            .or(file.max_per_core)
            .unwrap_or(32768);
        let min = flags.conntrack_min.or(file.min).unwrap_or(131_072);
        if max_per_core < 0 {
            return Err(invalid("conntrack.maxPerCore", "must be 0 or more"));
        }
        if min < 0 {
            return Err(invalid("conntrack.min", "must be 0 or more"));
        }
        let settings = hostnet::ConntrackSettings {
            max: hostnet::conntrack_max(max_per_core, min, cpus()),
            tcp_established_timeout: conntrack_timeout(
                flags.conntrack_tcp_timeout_established,
                file.tcp_established_timeout,
                Duration::from_secs(24 * 3600),
            ),
            tcp_close_wait_timeout: conntrack_timeout(
                flags.conntrack_tcp_timeout_close_wait,
                file.tcp_close_wait_timeout,
                Duration::from_secs(3600),
            ),
            tcp_be_liberal: flags
                .conntrack_tcp_be_liberal
                .or(file.tcp_be_liberal)
                .unwrap_or(false),
            udp_timeout: conntrack_timeout(
                flags.conntrack_udp_timeout,
                file.udp_timeout,
                Duration::ZERO,
            ),
            udp_stream_timeout: conntrack_timeout(
                flags.conntrack_udp_timeout_stream,
                file.udp_stream_timeout,
                Duration::ZERO,
            ),
        };
        Ok((settings, (max_per_core, min)))
    }
}

impl Settings {
    /// kube-proxy's `-v` level as a tracing filter (`RUST_LOG` wins when set): klog's V(2)
    /// is still routine detail.
    pub fn log_filter(&self) -> &'static str {
        // kube-rs' client logs every failed request at ERROR; the source already logs each
        // failed attempt once, with its wait (`watch failed; retrying`).
        match self.verbosity {
            0..=2 => "info,kube_client::client::builder=off",
            3..=4 => "debug",
            _ => "trace",
        }
    }

    /// The effective settings as `# key: value` comment lines, printed at the top of a text
    /// dry run so operators see what the merged configuration amounted to.
    pub fn summary(&self) -> String {
        let list = |v: &[IpNet]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let d = &self.desired;
        let node_ports = match &d.node_port_addresses {
            NodePortAddresses::All => "all local addresses".to_owned(),
            NodePortAddresses::Select { cidrs, primary } => {
                let mut s = list(cidrs);
                if *primary {
                    s.push_str(" + primary");
                }
                s
            }
        };
        let [tcp, tcpfin, udp] = self.ipvs_timeouts;
        let detector = match &d.local_detector {
            LocalDetector::None => "none".to_owned(),
            LocalDetector::ClusterCidr(c) => format!("ClusterCIDR {}", list(c)),
            LocalDetector::BridgeInterface(i) => format!("BridgeInterface {i}"),
            LocalDetector::InterfaceNamePrefix(p) => format!("InterfaceNamePrefix {p}"),
        };
        let endpoint = |a: Option<SocketAddr>| a.map_or("disabled".to_owned(), |a| a.to_string());
        let c = &self.conntrack;
        let secs = |v: Option<u64>| v.map_or("kernel's".to_owned(), |s| format!("{s}s"));
        let conntrack = format!(
            "max {}, tcp established {}, tcp close-wait {}, tcp be-liberal {}, udp {}, udp stream {}",
            c.max.map_or("kernel's".to_owned(), |m| m.to_string()),
            secs(c.tcp_established_timeout),
            secs(c.tcp_close_wait_timeout),
            if c.tcp_be_liberal { "1" } else { "kernel's" },
            secs(c.udp_timeout),
            secs(c.udp_stream_timeout),
        );
        format!(
            "# effective settings\n# scheduler: {}\n# masquerade-all: {}\n# local traffic detector: {detector}\n\
             # nodeport-addresses: {node_ports}\n# sync period: {:?} (min {:?})\n\
             # exclude-cidrs: {}\n# service-node-port-range: {}-{}\n# strict-arp: {}\n# ipvs timeouts tcp/tcpfin/udp: {:?}/{:?}/{:?}\n\
             # healthz: {}\n# metrics: {}\n# conntrack: {conntrack}\n# oom-score-adj: {}\n\n",
            d.scheduler,
            d.masquerade_all,
            self.sync_period,
            self.min_sync_period,
            list(&self.exclude_cidrs),
            self.node_port_range.start(),
            self.node_port_range.end(),
            self.strict_arp,
            tcp,
            tcpfin,
            udp,
            endpoint(self.healthz_bind_address),
            endpoint(self.metrics_bind_address),
            self.oom_score_adj,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings from a configuration file with `body` below its header, and `flags`.
    fn resolve(body: &str, flags: &[&str]) -> Result<Settings, SettingsError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(
            &mut file,
            format!(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}"
            )
            .as_bytes(),
        )
        .expect("write");
        let path = file.path().display().to_string();
        let args = [&["kube-ipvs-proxy", "--config", path.as_str()], flags].concat();
        Settings::resolve(&Cli::try_parse_args(args).expect("flags"))
    }

    /// `--ipvs-stats` / `ipvs.stats` and `--ipvs-drain-timeout` / `ipvs.drainTimeout` are
    /// ours: the flag applies with a file too (as `--hostname-override`), and a wrong value
    /// names the setting.
    #[test]
    fn ours_from_the_flag_or_the_file_per_service_stats_and_a_minutes_drain_by_default() {
        let detail = |body: &str, flags: &[&str]| resolve(body, flags).map(|s| s.ipvs_stats);
        assert_eq!(detail("", &[]).expect("valid"), StatsDetail::Services);
        let file = "ipvs:\n  stats: backends\n";
        assert_eq!(detail(file, &[]).expect("valid"), StatsDetail::Backends);
        let flag = detail(file, &["--ipvs-stats=services"]).expect("valid");
        assert_eq!(flag, StatsDetail::Services);
        let drain = |body: &str, flags: &[&str]| resolve(body, flags).map(|s| s.drain_timeout);
        assert_eq!(drain("", &[]).expect("valid"), Duration::from_secs(60));
        let file = "ipvs:\n  drainTimeout: 5m0s\n";
        assert_eq!(drain(file, &[]).expect("valid"), Duration::from_secs(300));
        let flagged = drain(file, &["--ipvs-drain-timeout=15s"]).expect("valid");
        assert_eq!(flagged, Duration::from_secs(15));
        let wrong = detail("ipvs:\n  stats: pods\n", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            wrong,
            "ipvs.stats: \"pods\" is neither services nor backends"
        );
        assert!(Cli::try_parse_args(["kube-ipvs-proxy", "--ipvs-stats=all"]).is_err());
    }

    /// kube-proxy's `Options.Complete`: with `--config`, the file replaces every flag that
    /// sets one of its fields; `--hostname-override` and `-v` still apply.
    #[test]
    fn with_a_file_its_fields_win_over_the_flags_as_in_kube_proxy() {
        let ok = |body: &str, flags: &[&str]| resolve(body, flags).expect("valid");
        assert_eq!(ok("", &[]).mode, ProxyMode::Ipvs);
        assert_eq!(ok("mode: iptables\n", &[]).mode, ProxyMode::Iptables);
        let flagged = ok(
            "mode: iptables\nhostnameOverride: from-file\n",
            &[
                "--proxy-mode",
                "ipvs",
                "--ipvs-scheduler=lc",
                "--no-fallback",
                "--hostname-override",
                "From-Flag",
                "--v=4",
            ],
        );
        assert_eq!(
            (flagged.mode, flagged.no_fallback),
            (ProxyMode::Iptables, true)
        );
        assert_eq!(flagged.desired.scheduler, Scheduler::Rr);
        assert_eq!(flagged.hostname_override.as_deref(), Some("from-flag"));
        assert_eq!(flagged.log_filter(), "debug");
        assert!(
            flagged.warnings.iter().any(|w| w
                == "--proxy-mode, --ipvs-scheduler ignored: as in kube-proxy, these \
                              settings come from --config only"),
            "{:?}",
            flagged.warnings
        );
        let field = resolve("mode: kernelspace\n", &[]).unwrap_err().to_string();
        assert!(field.starts_with("mode: \"kernelspace\""), "{field}");
        // Without a file, the flags apply.
        let flags = |args: &[&str]| {
            Settings::resolve(
                &Cli::try_parse_args([&["kube-ipvs-proxy"], args].concat()).expect("flags"),
            )
        };
        let flag = flags(&["--proxy-mode", "nftables"])
            .unwrap_err()
            .to_string();
        assert!(flag.starts_with("--proxy-mode: \"nftables\""), "{flag}");
        let s = flags(&[
            "--proxy-mode=iptables",
            "--ipvs-sync-period=5s",
            "--iptables-sync-period=7s",
        ])
        .expect("valid");
        assert_eq!(
            (s.mode, s.sync_period),
            (ProxyMode::Iptables, Duration::from_secs(7))
        );
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    /// kube-proxy's defaults (v1alpha1 `SetDefaults_KubeProxyConfiguration`, its flag
    /// defaults) and `addressFromDeprecatedFlags`/`AppendPortIfNeeded` for the endpoints.
    #[test]
    fn conntrack_oom_and_endpoints_default_as_in_kube_proxy() {
        let flags = |args: &[&str]| {
            Settings::resolve(
                &Cli::try_parse_args([&["kube-ipvs-proxy"], args].concat()).expect("flags"),
            )
            .expect("valid")
        };
        let s = flags(&[]);
        assert_eq!(s.oom_score_adj, -999);
        assert_eq!(
            (
                s.conntrack.tcp_established_timeout,
                s.conntrack.tcp_close_wait_timeout
            ),
            (Some(86400), Some(3600))
        );
        assert!(s.conntrack.max.is_some_and(|m| m >= 131_072));
        assert_eq!(
            (s.healthz_bind_address, s.metrics_bind_address),
            (
                Some("0.0.0.0:10256".parse().unwrap()),
                Some("127.0.0.1:10249".parse().unwrap())
            )
        );
        let s = flags(&[
            "--v=4",
            "--conntrack-max-per-core=0",
            "--oom-score-adj=-999",
            "--conntrack-tcp-timeout-established=0s",
            "--conntrack-udp-timeout=30s",
            "--conntrack-tcp-be-liberal",
            "--healthz-port=0",
            "--metrics-bind-address=10.0.0.1",
            "--bind-address=192.0.2.7",
        ]);
        assert_eq!(s.conntrack.max, None);
        assert_eq!(s.conntrack.tcp_established_timeout, None);
        assert_eq!(s.conntrack.udp_timeout, Some(30));
        assert!(s.conntrack.tcp_be_liberal);
        assert_eq!(s.healthz_bind_address, None);
        assert_eq!(
            s.metrics_bind_address,
            Some("10.0.0.1:10249".parse().unwrap())
        );
        assert_eq!(s.node_ips, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        let file = resolve(
            "oomScoreAdj: 5\nconntrack:\n  maxPerCore: null\n  tcpEstablishedTimeout: 0s\n  \
             udpStreamTimeout: 2m0s\nhealthzBindAddress: 127.0.0.2\nbindAddressHardFail: true\n",
            &[],
        )
        .expect("valid");
        assert_eq!(file.oom_score_adj, 5);
        assert_eq!(file.conntrack.tcp_established_timeout, None);
        assert_eq!(file.conntrack.udp_stream_timeout, Some(120));
        assert_eq!(
            file.healthz_bind_address,
            Some("127.0.0.2:10256".parse().unwrap())
        );
        assert!(file.bind_address_hard_fail);
        let err = resolve("oomScoreAdj: -1001\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("oomScoreAdj: -1001"), "{err}");
    }

    #[test]
    fn the_configured_modes_section_gives_the_sync_periods() {
        let body = "iptables:\n  syncPeriod: 10s\n  minSyncPeriod: 2s\n  localhostNodePorts: false\n\
                    ipvs:\n  syncPeriod: 20s\n";
        let iptables = resolve(&format!("mode: iptables\n{body}"), &[]).expect("valid");
        assert_eq!(iptables.sync_period, Duration::from_secs(10));
        assert_eq!(iptables.min_sync_period, Duration::from_secs(2));
        assert!(!iptables.localhost_node_ports);
        let ipvs = resolve(body, &[]).expect("valid");
        assert_eq!(ipvs.sync_period, Duration::from_secs(20));
        assert_eq!(ipvs.min_sync_period, Duration::ZERO);
        assert!(resolve("", &[]).expect("valid").localhost_node_ports);
    }

    #[test]
    fn the_node_port_range_is_parsed_as_the_api_server_does() {
        let range = |flag: &str| {
            Cli::try_parse_args(["kube-ipvs-proxy", "--service-node-port-range", flag])
                .map(|cli| Settings::resolve(&cli).expect("valid").node_port_range)
                .map_err(|e| e.to_string())
        };
        assert_eq!(range("20000-22767"), Ok(20000..=22767));
        assert_eq!(range("30000+100"), Ok(30000..=30100));
        assert_eq!(range("31000"), Ok(31000..=31000));
        for bad in ["32767-30000", "0-100", "65000+1000", "a-b", "30000-"] {
            let err = range(bad).expect_err(bad);
            assert!(err.contains("--service-node-port-range"), "{bad}: {err}");
        }
        let default =
            Settings::resolve(&Cli::try_parse_args(["kube-ipvs-proxy"]).expect("no flags"));
        assert_eq!(default.expect("valid").node_port_range, 30000..=32767);
    }
}

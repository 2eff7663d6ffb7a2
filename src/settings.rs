//! The effective settings: built-in defaults, overridden by the configuration file, overridden
//! by command-line flags; validated once, here.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use desired::{Config, LocalDetector, NodePortAddresses};
use ipnet::IpNet;
use model::Scheduler;

use crate::cli::Cli;
use crate::kubeproxy_config::{ConfigError, KubeProxyConfiguration};
use crate::mode::ProxyMode;

/// A setting that cannot be used; the daemon exits with code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
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
pub(crate) struct Settings {
    /// `--proxy-mode` / `mode`: the configured mode (IPVS may still fall back to iptables).
    pub(crate) mode: ProxyMode,
    /// `--no-fallback`: exit instead of falling back from IPVS to iptables.
    pub(crate) no_fallback: bool,
    /// `iptables.localhostNodePorts` (default true): in iptables mode, IPv4 NodePorts also
    /// answer on 127.0.0.0/8.
    pub(crate) localhost_node_ports: bool,
    /// The desired-state configuration.
    pub(crate) desired: Config,
    /// `--hostname-override` / `hostnameOverride`.
    pub(crate) hostname_override: Option<String>,
    /// `--kubeconfig` / `clientConnection.kubeconfig`.
    pub(crate) kubeconfig: Option<PathBuf>,
    /// `--ipvs-sync-period` / `ipvs.syncPeriod`.
    pub(crate) sync_period: Duration,
    /// `--ipvs-min-sync-period` / `ipvs.minSyncPeriod`.
    pub(crate) min_sync_period: Duration,
    /// `--ipvs-exclude-cidrs` / `ipvs.excludeCIDRs`.
    pub(crate) exclude_cidrs: Vec<IpNet>,
    /// `--ipvs-strict-arp` / `ipvs.strictARP`.
    pub(crate) strict_arp: bool,
    /// `--service-node-port-range`: which virtual servers on node addresses are ours.
    pub(crate) node_port_range: RangeInclusive<u16>,
    /// `--ipvs-tcp-timeout`, `--ipvs-tcpfin-timeout`, `--ipvs-udp-timeout` (zero: keep the
    /// kernel's).
    pub(crate) ipvs_timeouts: [Duration; 3],
    /// `--healthz-bind-address` / `healthzBindAddress`.
    pub(crate) healthz_bind_address: SocketAddr,
    /// `--metrics-bind-address` / `metricsBindAddress`.
    pub(crate) metrics_bind_address: SocketAddr,
    /// `--service-proxy-name`.
    pub(crate) service_proxy_name: Option<String>,
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

fn split(list: &str) -> Vec<String> {
    list.split(',').map(str::to_owned).collect()
}

/// The flag, else the file's field (empty means unset), else the default.
fn bind_address(
    setting: &'static str,
    flag: Option<SocketAddr>,
    file: Option<String>,
    default: &str,
) -> Result<SocketAddr, SettingsError> {
    if let Some(a) = flag {
        return Ok(a);
    }
    let s = file.filter(|s| !s.is_empty());
    let s = s.as_deref().unwrap_or(default);
    s.parse()
        .map_err(|_| invalid(setting, format!("{s:?} is not an address:port")))
}

impl Settings {
    /// Merges defaults, the `--config` file and the flags.
    ///
    /// # Errors
    /// [`SettingsError`] naming the setting.
    pub(crate) fn resolve(cli: &Cli) -> Result<Settings, SettingsError> {
        let file = match &cli.config {
            Some(path) => KubeProxyConfiguration::load(path)?,
            None => KubeProxyConfiguration::default(),
        };
        let ipvs = file.ipvs.unwrap_or_default();
        let iptables = file.iptables.unwrap_or_default();

        let mode = match (&cli.proxy_mode, &file.mode) {
            (Some(flag), _) => ProxyMode::parse(flag).map_err(|e| invalid("--proxy-mode", e))?,
            (None, Some(field)) => ProxyMode::parse(field).map_err(|e| invalid("mode", e))?,
            (None, None) => ProxyMode::Ipvs,
        };
        let scheduler = match cli
            .ipvs_scheduler
            .clone()
            .or(ipvs.scheduler)
            .filter(|s| !s.is_empty())
        {
            None => Scheduler::Rr,
            Some(s) => s.parse().map_err(|e: model::scheduler::UnknownScheduler| {
                invalid("ipvs.scheduler", e.to_string())
            })?,
        };
        let detect = file.detect_local.unwrap_or_default();
        let cluster_cidrs = match (&cli.cluster_cidr, &file.cluster_cidr) {
            (Some(list), _) => cidrs("clusterCIDR", &split(list))?,
            (None, Some(list)) if !list.is_empty() => cidrs("clusterCIDR", &split(list))?,
            (None, _) => cidrs(
                "detectLocal.clusterCIDRs",
                &detect.cluster_cidrs.clone().unwrap_or_default(),
            )?,
        };
        let local_detector = match file.detect_local_mode.as_deref().unwrap_or("") {
            "" | "ClusterCIDR" if cluster_cidrs.is_empty() => LocalDetector::None,
            "" | "ClusterCIDR" => LocalDetector::ClusterCidr(cluster_cidrs),
            "BridgeInterface" => {
                LocalDetector::BridgeInterface(detect.bridge_interface.ok_or_else(|| {
                    invalid(
                        "detectLocal.bridgeInterface",
                        "required by detectLocalMode BridgeInterface",
                    )
                })?)
            }
            "InterfaceNamePrefix" => LocalDetector::InterfaceNamePrefix(
                detect.interface_name_prefix.ok_or_else(|| {
                    invalid(
                        "detectLocal.interfaceNamePrefix",
                        "required by detectLocalMode InterfaceNamePrefix",
                    )
                })?,
            ),
            other => {
                return Err(invalid(
                    "detectLocalMode",
                    format!(
                        "{other:?} is not supported (ClusterCIDR, BridgeInterface, InterfaceNamePrefix)"
                    ),
                ));
            }
        };
        let node_port_list = match &cli.nodeport_addresses {
            Some(list) => split(list),
            None => file.node_port_addresses.unwrap_or_default(),
        };
        let primary = node_port_list.iter().any(|s| s.trim() == "primary");
        let npa_cidrs: Vec<String> = node_port_list
            .into_iter()
            .filter(|s| s.trim() != "primary")
            .collect();
        let npa_cidrs = cidrs("nodePortAddresses", &npa_cidrs)?;
        let node_port_addresses = if npa_cidrs.is_empty() && !primary {
            NodePortAddresses::All
        } else {
            NodePortAddresses::Select {
                cidrs: npa_cidrs,
                primary,
            }
        };
        let masquerade_bit = iptables.masquerade_bit.unwrap_or(14);
        let masquerade_bit = u8::try_from(masquerade_bit)
            .ok()
            .filter(|b| *b <= 31)
            .ok_or_else(|| {
                invalid(
                    "iptables.masqueradeBit",
                    format!("{masquerade_bit} is not in 0-31"),
                )
            })?;
        let masquerade_all = cli
            .masquerade_all
            .or(file.linux.and_then(|l| l.masquerade_all))
            .or(iptables.masquerade_all)
            .unwrap_or(false);
        let exclude = match &cli.ipvs_exclude_cidrs {
            Some(list) => split(list),
            None => ipvs.exclude_cidrs.unwrap_or_default(),
        };
        let healthz = bind_address(
            "healthzBindAddress",
            cli.healthz_bind_address,
            file.healthz_bind_address,
            "0.0.0.0:10256",
        )?;
        let metrics = bind_address(
            "metricsBindAddress",
            cli.metrics_bind_address,
            file.metrics_bind_address,
            "127.0.0.1:10249",
        )?;
        // As in kube-proxy's defaulting, a zero duration in the file means "the default"
        // (kubeadm writes `syncPeriod: 0s`).
        let period = |flag: Option<Duration>,
                      file: Option<crate::kubeproxy_config::GoDuration>,
                      default: Duration| {
            flag.or(file.map(|d| d.0).filter(|d| !d.is_zero()))
                .unwrap_or(default)
        };
        // The configured mode's section, then the top-level fields.
        let (mode_sync_period, mode_min_sync_period) = match mode {
            ProxyMode::Ipvs => (ipvs.sync_period, ipvs.min_sync_period),
            ProxyMode::Iptables => (iptables.sync_period, iptables.min_sync_period),
        };
        let sync_period = period(
            cli.ipvs_sync_period,
            mode_sync_period.or(file.sync_period),
            Duration::from_secs(30),
        );
        if sync_period.is_zero() {
            return Err(invalid("ipvs.syncPeriod", "must be greater than 0"));
        }
        Ok(Settings {
            mode,
            no_fallback: cli.no_fallback,
            localhost_node_ports: iptables.localhost_node_ports.unwrap_or(true),
            desired: Config {
                scheduler,
                masquerade_all,
                local_detector,
                node_port_addresses,
                masquerade_bit,
                random_fully: true,
            },
            hostname_override: cli
                .hostname_override
                .clone()
                .or(file.hostname_override)
                .filter(|h| !h.is_empty())
                .map(|h| h.trim().to_lowercase()),
            kubeconfig: cli.kubeconfig.clone().or(file
                .client_connection
                .and_then(|c| c.kubeconfig)
                .filter(|k| !k.is_empty())
                .map(PathBuf::from)),
            sync_period,
            min_sync_period: period(
                cli.ipvs_min_sync_period,
                mode_min_sync_period.or(file.min_sync_period),
                Duration::ZERO,
            ),
            exclude_cidrs: cidrs("ipvs.excludeCIDRs", &exclude)?,
            strict_arp: cli.ipvs_strict_arp.or(ipvs.strict_arp).unwrap_or(false),
            node_port_range: cli
                .service_node_port_range
                .clone()
                .unwrap_or(reconcile::Ownership::DEFAULT_NODE_PORT_RANGE),
            ipvs_timeouts: [
                period(cli.ipvs_tcp_timeout, ipvs.tcp_timeout, Duration::ZERO),
                period(
                    cli.ipvs_tcpfin_timeout,
                    ipvs.tcp_fin_timeout,
                    Duration::ZERO,
                ),
                period(cli.ipvs_udp_timeout, ipvs.udp_timeout, Duration::ZERO),
            ],
            healthz_bind_address: healthz,
            metrics_bind_address: metrics,
            service_proxy_name: cli.service_proxy_name.clone(),
        })
    }
}

impl Settings {
    /// The effective settings as `# key: value` comment lines, printed at the top of a text
    /// dry run so operators see what the merged configuration amounted to.
    pub(crate) fn summary(&self) -> String {
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
        format!(
            "# effective settings\n# scheduler: {}\n# masquerade-all: {}\n# local traffic detector: {detector}\n\
             # nodeport-addresses: {node_ports}\n# sync period: {:?} (min {:?})\n\
             # exclude-cidrs: {}\n# service-node-port-range: {}-{}\n# strict-arp: {}\n# ipvs timeouts tcp/tcpfin/udp: {:?}/{:?}/{:?}\n\
             # healthz: {}\n# metrics: {}\n\n",
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
            self.healthz_bind_address,
            self.metrics_bind_address,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        Settings::resolve(&Cli::try_parse_from(args).expect("flags"))
    }

    #[test]
    fn the_mode_comes_from_the_flag_then_the_file() {
        let ok = |body: &str, flags: &[&str]| resolve(body, flags).expect("valid");
        assert_eq!(ok("", &[]).mode, ProxyMode::Ipvs);
        assert_eq!(ok("mode: iptables\n", &[]).mode, ProxyMode::Iptables);
        let flagged = ok(
            "mode: iptables\n",
            &["--proxy-mode", "ipvs", "--no-fallback"],
        );
        assert_eq!((flagged.mode, flagged.no_fallback), (ProxyMode::Ipvs, true));
        let field = resolve("mode: kernelspace\n", &[]).unwrap_err().to_string();
        assert!(field.starts_with("mode: \"kernelspace\""), "{field}");
        let flag = resolve("", &["--proxy-mode", "nftables"])
            .unwrap_err()
            .to_string();
        assert!(flag.starts_with("--proxy-mode: \"nftables\""), "{flag}");
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
            Cli::try_parse_from(["kube-ipvs-proxy", "--service-node-port-range", flag])
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
            Settings::resolve(&Cli::try_parse_from(["kube-ipvs-proxy"]).expect("no flags"));
        assert_eq!(default.expect("valid").node_port_range, 30000..=32767);
    }
}

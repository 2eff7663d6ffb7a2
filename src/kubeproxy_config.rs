//! kube-proxy's own configuration file, `KubeProxyConfiguration` (`kubeproxy.config.k8s.io/
//! v1alpha1`), so an existing kube-proxy ConfigMap can be mounted as it is.
//!
//! Every field of v1alpha1 is accepted (fields that do not apply to IPVS mode are read and
//! ignored); an unknown field or a wrong type is an error naming the field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A field is unknown or has the wrong type.
    #[error("{path}: field {field}: {message}")]
    Field {
        /// The file.
        path: String,
        /// The field's path (`ipvs.scheduler`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// apiVersion or kind is not what kube-proxy reads.
    #[error("{path}: {message}")]
    Type {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A Go duration (`30s`, `1m30s`, `1h`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses Go's `time.ParseDuration` syntax (without signs).
    pub(crate) fn parse(s: &str) -> Option<GoDuration> {
        let mut rest = s.trim();
        if rest == "0" {
            return Some(GoDuration(Duration::ZERO));
        }
        if rest.is_empty() {
            return None;
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let value: f64 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            rest = &rest[unit_len..];
            total += value * scale;
        }
        Some(GoDuration(Duration::from_secs_f64(total)))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a duration like 30s or 1m0s"))
        })
    }
}

/// `KubeProxyConfiguration` v1alpha1. Fields that do not apply to IPVS mode (nftables,
/// winkernel…) or that later steps will use (conntrack, client QPS) are read, type-checked and
/// otherwise ignored for now.
#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct KubeProxyConfiguration {
    pub(crate) api_version: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) feature_gates: Option<BTreeMap<String, bool>>,
    pub(crate) client_connection: Option<ClientConnection>,
    pub(crate) logging: Option<serde_yaml::Value>,
    pub(crate) hostname_override: Option<String>,
    pub(crate) bind_address: Option<String>,
    pub(crate) healthz_bind_address: Option<String>,
    pub(crate) metrics_bind_address: Option<String>,
    pub(crate) bind_address_hard_fail: Option<bool>,
    pub(crate) enable_profiling: Option<bool>,
    pub(crate) show_hidden_metrics_for_version: Option<String>,
    pub(crate) mode: Option<String>,
    pub(crate) iptables: Option<Iptables>,
    pub(crate) ipvs: Option<Ipvs>,
    pub(crate) nftables: Option<Nftables>,
    pub(crate) winkernel: Option<serde_yaml::Value>,
    pub(crate) detect_local_mode: Option<String>,
    pub(crate) detect_local: Option<DetectLocal>,
    #[serde(rename = "clusterCIDR")]
    pub(crate) cluster_cidr: Option<String>,
    pub(crate) node_port_addresses: Option<Vec<String>>,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) conntrack: Option<Conntrack>,
    pub(crate) config_sync_period: Option<GoDuration>,
    pub(crate) port_range: Option<String>,
    pub(crate) windows_run_as_service: Option<bool>,
    pub(crate) linux: Option<Linux>,
    pub(crate) windows: Option<serde_yaml::Value>,
    pub(crate) sync_period: Option<GoDuration>,
    pub(crate) min_sync_period: Option<GoDuration>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClientConnection {
    pub(crate) kubeconfig: Option<String>,
    pub(crate) accept_content_types: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) qps: Option<f32>,
    pub(crate) burst: Option<i32>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Iptables {
    pub(crate) masquerade_bit: Option<i32>,
    pub(crate) masquerade_all: Option<bool>,
    pub(crate) localhost_node_ports: Option<bool>,
    pub(crate) sync_period: Option<GoDuration>,
    pub(crate) min_sync_period: Option<GoDuration>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Ipvs {
    pub(crate) sync_period: Option<GoDuration>,
    pub(crate) min_sync_period: Option<GoDuration>,
    pub(crate) scheduler: Option<String>,
    #[serde(rename = "excludeCIDRs")]
    pub(crate) exclude_cidrs: Option<Vec<String>>,
    #[serde(rename = "strictARP")]
    pub(crate) strict_arp: Option<bool>,
    pub(crate) tcp_timeout: Option<GoDuration>,
    pub(crate) tcp_fin_timeout: Option<GoDuration>,
    pub(crate) udp_timeout: Option<GoDuration>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Nftables {
    pub(crate) masquerade_bit: Option<i32>,
    pub(crate) masquerade_all: Option<bool>,
    pub(crate) sync_period: Option<GoDuration>,
    pub(crate) min_sync_period: Option<GoDuration>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DetectLocal {
    pub(crate) bridge_interface: Option<String>,
    pub(crate) interface_name_prefix: Option<String>,
    #[serde(rename = "clusterCIDRs")]
    pub(crate) cluster_cidrs: Option<Vec<String>>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Conntrack {
    pub(crate) max_per_core: Option<i32>,
    pub(crate) min: Option<i32>,
    pub(crate) tcp_established_timeout: Option<GoDuration>,
    pub(crate) tcp_close_wait_timeout: Option<GoDuration>,
    pub(crate) tcp_be_liberal: Option<bool>,
    pub(crate) udp_timeout: Option<GoDuration>,
    pub(crate) udp_stream_timeout: Option<GoDuration>,
}

#[allow(missing_docs, dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Linux {
    pub(crate) masquerade_all: Option<bool>,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) conntrack: Option<Conntrack>,
}

const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

impl KubeProxyConfiguration {
    /// Reads and checks a file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field at fault.
    pub(crate) fn load(path: &Path) -> Result<KubeProxyConfiguration, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses a file's text.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field at fault.
    pub(crate) fn parse(path: &str, text: &str) -> Result<KubeProxyConfiguration, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: KubeProxyConfiguration = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let message = match inner.location() {
                Some(l) => format!("{inner} (line {})", l.line()),
                None => inner.to_string(),
            };
            ConfigError::Field {
                path: path.to_owned(),
                field,
                message,
            }
        })?;
        let type_error = |message: String| ConfigError::Type {
            path: path.to_owned(),
            message,
        };
        if config.api_version.as_deref() != Some(API_VERSION) {
            return Err(type_error(format!(
                "apiVersion must be {API_VERSION}, not {:?}",
                config.api_version.as_deref().unwrap_or_default()
            )));
        }
        if config.kind.as_deref() != Some("KubeProxyConfiguration") {
            return Err(type_error(format!(
                "kind must be KubeProxyConfiguration, not {:?}",
                config.kind.as_deref().unwrap_or_default()
            )));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

    #[test]
    fn reads_a_kubeadm_style_config() {
        let text = format!(
            "{HEADER}mode: ipvs\nclusterCIDR: 10.244.0.0/16\nipvs:\n  scheduler: lc\n  syncPeriod: 1m0s\n  \
             minSyncPeriod: 500ms\n  excludeCIDRs: [192.0.2.0/24]\n  strictARP: true\n  tcpTimeout: 0s\n\
             iptables:\n  masqueradeAll: false\n  masqueradeBit: 14\nnodePortAddresses: [primary]\n\
             clientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 5\n\
             conntrack:\n  maxPerCore: 32768\n  tcpEstablishedTimeout: 24h0m0s\n"
        );
        let c = KubeProxyConfiguration::parse("c.yaml", &text).expect("valid");
        let ipvs = c.ipvs.expect("ipvs");
        assert_eq!(ipvs.scheduler.as_deref(), Some("lc"));
        assert_eq!(ipvs.sync_period, Some(GoDuration(Duration::from_secs(60))));
        assert_eq!(
            ipvs.min_sync_period,
            Some(GoDuration(Duration::from_millis(500)))
        );
        assert_eq!(c.cluster_cidr.as_deref(), Some("10.244.0.0/16"));
    }

    #[test]
    fn unknown_field_is_named() {
        let err =
            KubeProxyConfiguration::parse("c.yaml", &format!("{HEADER}ipvs:\n  schedular: rr\n"))
                .expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains("ipvs.schedular") || msg.contains("schedular"),
            "{msg}"
        );
        assert!(msg.starts_with("c.yaml: field ipvs"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = KubeProxyConfiguration::parse(
            "c.yaml",
            &format!("{HEADER}ipvs:\n  strictARP: maybe\n"),
        )
        .expect_err("type");
        assert!(err.to_string().contains("field ipvs.strictARP"), "{err}");
        let err = KubeProxyConfiguration::parse(
            "c.yaml",
            &format!("{HEADER}ipvs:\n  syncPeriod: soon\n"),
        )
        .expect_err("duration");
        assert!(err.to_string().contains("field ipvs.syncPeriod"), "{err}");
    }

    #[test]
    fn wrong_kind_is_refused() {
        let err = KubeProxyConfiguration::parse("c.yaml", "apiVersion: v1\nkind: ConfigMap\n")
            .expect_err("kind");
        assert!(err.to_string().contains("apiVersion"), "{err}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            GoDuration::parse("1h2m3s"),
            Some(GoDuration(Duration::from_secs(3723)))
        );
        assert_eq!(GoDuration::parse("0"), Some(GoDuration(Duration::ZERO)));
        assert_eq!(
            GoDuration::parse("1.5s"),
            Some(GoDuration(Duration::from_millis(1500)))
        );
        assert_eq!(GoDuration::parse("10"), None);
        assert_eq!(GoDuration::parse("5 days"), None);
    }
}

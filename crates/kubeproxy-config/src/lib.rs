//! kube-proxy's own configuration file, `KubeProxyConfiguration` (`kubeproxy.config.k8s.io/
//! v1alpha1`), so an existing kube-proxy ConfigMap can be mounted as it is.
//!
//! Decoded as kube-proxy's `loadConfig` does: strictly first; when that fails only on
//! unknown or duplicate fields, leniently (unknown fields dropped, the last of duplicates
//! kept) with one warning naming them. A wrong type, a bad value or a wrong
//! `apiVersion`/`kind` is an error naming the field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses Go's `time.ParseDuration` syntax (without signs).
    pub fn parse(s: &str) -> Option<GoDuration> {
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

/// Fields of a section that kube-proxy's v1alpha1 does not have, kept to be named.
type Unknown = BTreeMap<String, serde_norway::Value>;

/// `KubeProxyConfiguration` v1alpha1. Every field is read and type-checked; the ones the
/// daemon does not honour are named by the daemon at start-up.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub feature_gates: Option<BTreeMap<String, bool>>,
    pub client_connection: Option<ClientConnection>,
    pub logging: Option<serde_norway::Value>,
    pub hostname_override: Option<String>,
    pub bind_address: Option<String>,
    pub healthz_bind_address: Option<String>,
    pub metrics_bind_address: Option<String>,
    pub bind_address_hard_fail: Option<bool>,
    pub enable_profiling: Option<bool>,
    pub show_hidden_metrics_for_version: Option<String>,
    pub mode: Option<String>,
    pub iptables: Option<Iptables>,
    pub ipvs: Option<Ipvs>,
    pub nftables: Option<Nftables>,
    pub winkernel: Option<serde_norway::Value>,
    pub detect_local_mode: Option<String>,
    pub detect_local: Option<DetectLocal>,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    pub node_port_addresses: Option<Vec<String>>,
    pub oom_score_adj: Option<i32>,
    pub conntrack: Option<Conntrack>,
    pub config_sync_period: Option<GoDuration>,
    pub port_range: Option<String>,
    pub windows_run_as_service: Option<bool>,
    pub linux: Option<Linux>,
    pub windows: Option<serde_norway::Value>,
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    pub kubeconfig: Option<String>,
    pub accept_content_types: Option<String>,
    pub content_type: Option<String>,
    pub qps: Option<f32>,
    pub burst: Option<i32>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Iptables {
    pub masquerade_bit: Option<i32>,
    pub masquerade_all: Option<bool>,
    pub localhost_node_ports: Option<bool>,
    #[serde(rename = "snatNodeInternalIP")]
    pub snat_node_internal_ip: Option<bool>,
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipvs {
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    pub scheduler: Option<String>,
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Option<Vec<String>>,
    #[serde(rename = "strictARP")]
    pub strict_arp: Option<bool>,
    pub tcp_timeout: Option<GoDuration>,
    pub tcp_fin_timeout: Option<GoDuration>,
    pub udp_timeout: Option<GoDuration>,
    /// Ours (`--ipvs-stats`): `services` or `backends`.
    pub stats: Option<String>,
    /// Ours (`--ipvs-drain-timeout`).
    pub drain_timeout: Option<GoDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nftables {
    pub masquerade_bit: Option<i32>,
    pub masquerade_all: Option<bool>,
    pub sync_period: Option<GoDuration>,
    pub min_sync_period: Option<GoDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectLocal {
    pub bridge_interface: Option<String>,
    pub interface_name_prefix: Option<String>,
    #[serde(rename = "clusterCIDRs")]
    pub cluster_cidrs: Option<Vec<String>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conntrack {
    pub max_per_core: Option<i32>,
    pub min: Option<i32>,
    pub tcp_established_timeout: Option<GoDuration>,
    pub tcp_close_wait_timeout: Option<GoDuration>,
    pub tcp_be_liberal: Option<bool>,
    pub udp_timeout: Option<GoDuration>,
    pub udp_stream_timeout: Option<GoDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub masquerade_all: Option<bool>,
    pub oom_score_adj: Option<i32>,
    pub conntrack: Option<Conntrack>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// A decoded file.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The configuration.
    pub config: KubeProxyConfiguration,
    /// Fields that made strict decoding fail, by path (`ipvs.schedular`): unknown ones,
    /// which were dropped, and duplicate ones, of which the last was kept. Empty when the
    /// file decoded strictly.
    pub lenient: Vec<String>,
}

impl KubeProxyConfiguration {
    /// Reads and checks a file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field at fault.
    pub fn load(path: &Path) -> Result<Decoded, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses a file's text: strictly, else leniently as kube-proxy's `loadConfig`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field at fault.
    pub fn parse(path: &str, text: &str) -> Result<Decoded, ConfigError> {
        let field_error = |e: serde_path_to_error::Error<serde_norway::Error>| {
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
        };
        let strict = serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text));
        let (config, duplicates): (KubeProxyConfiguration, Vec<String>) = match strict {
            Ok(config) => (config, Vec::new()),
            Err(e) if is_duplicate(e.inner()) => {
                let loose: Loose = serde_norway::from_str(text).map_err(|_| field_error(e))?;
                let config = serde_path_to_error::deserialize(loose.value).map_err(field_error)?;
                (config, loose.duplicates)
            }
            Err(e) => return Err(field_error(e)),
        };
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
        let mut lenient = config.unknown_fields();
        lenient.extend(duplicates);
        Ok(Decoded { config, lenient })
    }

    /// The fields of the file that v1alpha1 does not have, by path.
    fn unknown_fields(&self) -> Vec<String> {
        let sections: [(&str, Option<&Unknown>); 8] = [
            ("", Some(&self.unknown)),
            (
                "clientConnection.",
                self.client_connection.as_ref().map(|s| &s.unknown),
            ),
            ("iptables.", self.iptables.as_ref().map(|s| &s.unknown)),
            ("ipvs.", self.ipvs.as_ref().map(|s| &s.unknown)),
            ("nftables.", self.nftables.as_ref().map(|s| &s.unknown)),
            (
                "detectLocal.",
                self.detect_local.as_ref().map(|s| &s.unknown),
            ),
            ("conntrack.", self.conntrack.as_ref().map(|s| &s.unknown)),
            ("linux.", self.linux.as_ref().map(|s| &s.unknown)),
        ];
        let mut fields: Vec<String> = sections
            .into_iter()
            .flat_map(|(prefix, unknown)| {
                unknown
                    .into_iter()
                    .flat_map(BTreeMap::keys)
                    .map(move |k| format!("{prefix}{k}"))
            })
            .collect();
        if let Some(c) = self.linux.as_ref().and_then(|l| l.conntrack.as_ref()) {
            fields.extend(c.unknown.keys().map(|k| format!("linux.conntrack.{k}")));
        }
        fields
    }
}

/// Whether strict decoding failed on a duplicate key (serde's "duplicate field" for a
/// struct, serde_norway's "duplicate entry" for a map).
fn is_duplicate(e: &serde_norway::Error) -> bool {
    let message = e.to_string();
    message.contains("duplicate field `") || message.contains("duplicate entry with key")
}

/// A YAML document decoded as the lenient decoder does: in a mapping, the last of
/// duplicate keys wins; the duplicates are listed by path.
#[derive(Debug)]
struct Loose {
    value: serde_norway::Value,
    duplicates: Vec<String>,
}

impl Loose {
    fn plain(value: impl Into<serde_norway::Value>) -> Self {
        Loose {
            value: value.into(),
            duplicates: Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> serde::de::Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::plain(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::plain(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::plain(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::plain(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::plain(v))
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::plain(serde_norway::Value::Null))
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::plain(serde_norway::Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut items = Vec::new();
        let mut duplicates = Vec::new();
        while let Some(item) = seq.next_element::<Loose>()? {
            let index = items.len();
            duplicates.extend(
                item.duplicates
                    .into_iter()
                    .map(|d| format!("[{index}].{d}")),
            );
            items.push(item.value);
        }
        Ok(Loose {
            value: serde_norway::Value::Sequence(items),
            duplicates,
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut mapping = serde_norway::Mapping::new();
        let mut duplicates = Vec::new();
        while let Some((key, value)) = map.next_entry::<serde_norway::Value, Loose>()? {
            let name = match &key {
                serde_norway::Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            duplicates.extend(value.duplicates.into_iter().map(|d| format!("{name}.{d}")));
            if mapping.insert(key, value.value).is_some() {
                duplicates.push(name);
            }
        }
        Ok(Loose {
            value: serde_norway::Value::Mapping(mapping),
            duplicates,
        })
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
        let decoded = KubeProxyConfiguration::parse("c.yaml", &text).expect("valid");
        assert!(decoded.lenient.is_empty(), "{:?}", decoded.lenient);
        let c = decoded.config;
        let ipvs = c.ipvs.expect("ipvs");
        assert_eq!(ipvs.scheduler.as_deref(), Some("lc"));
        assert_eq!(ipvs.sync_period, Some(GoDuration(Duration::from_secs(60))));
        assert_eq!(
            ipvs.min_sync_period,
            Some(GoDuration(Duration::from_millis(500)))
        );
        assert_eq!(c.cluster_cidr.as_deref(), Some("10.244.0.0/16"));
    }

    /// kube-proxy's `loadConfig`: strict decoding fails on unknown and duplicate fields,
    /// lenient decoding then drops the unknown ones and keeps the last duplicate.
    #[test]
    fn unknown_and_duplicate_fields_are_decoded_leniently_and_named() {
        let decoded = KubeProxyConfiguration::parse(
            "c.yaml",
            &format!(
                "{HEADER}mode: ipvs\nfutureField: 1\nipvs:\n  schedular: rr\n  scheduler: lc\n\
                 conntrack:\n  maxPerCore: 1\n  maxPerCore: 0\n"
            ),
        )
        .expect("lenient");
        assert_eq!(
            decoded.lenient,
            ["futureField", "ipvs.schedular", "conntrack.maxPerCore"]
        );
        let c = decoded.config;
        assert_eq!(c.ipvs.and_then(|i| i.scheduler).as_deref(), Some("lc"));
        assert_eq!(c.conntrack.and_then(|c| c.max_per_core), Some(0));
        // A wrong type is still an error, also when a duplicate made decoding lenient.
        let err = KubeProxyConfiguration::parse(
            "c.yaml",
            &format!("{HEADER}mode: ipvs\nmode: ipvs\nipvs:\n  strictARP: maybe\n"),
        )
        .expect_err("type");
        assert!(err.to_string().contains("field ipvs.strictARP"), "{err}");
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

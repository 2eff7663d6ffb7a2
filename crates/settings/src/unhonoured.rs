//! Settings kube-proxy has that this daemon accepts without honouring: one warning each,
//! naming the field or flag and saying what the daemon does instead. A setting left at
//! its zero value (as kubeadm writes every field) changes nothing and is not named.

use kubeproxy_config::KubeProxyConfiguration;

use crate::cli::{AlwaysFlags, KubeProxyFlags};

/// The warnings for `file` and the flags (the file-setting ones already emptied when
/// `--config` is given).
pub(crate) fn warnings(
    file: &KubeProxyConfiguration,
    flags: &KubeProxyFlags,
    always: &AlwaysFlags,
) -> Vec<String> {
    let client = file.client_connection.as_ref();
    let field = |key: &str| file.logging.as_ref().and_then(|l| l.get(key));
    let logging = |key: &str| field(key).is_some_and(|v| !is_zero(v));
    let text = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    let gates = flags
        .feature_gates
        .clone()
        .filter(|g| !g.is_empty())
        .or_else(|| {
            file.feature_gates
                .as_ref()
                .filter(|g| !g.is_empty())
                .map(|g| g.keys().cloned().collect::<Vec<_>>().join(","))
        });
    let nftables = file.nftables.as_ref().is_some_and(|n| {
        n.masquerade_bit.is_some()
            || n.masquerade_all == Some(true)
            || n.sync_period.is_some_and(|d| !d.0.is_zero())
            || n.min_sync_period.is_some_and(|d| !d.0.is_zero())
    });
    let windows = [&file.winkernel, &file.windows]
        .into_iter()
        .flatten()
        .any(|v| !is_zero(v))
        || file.windows_run_as_service == Some(true);
    let checks: [(bool, String, &str); 18] = [
        (
            nftables,
            "nftables.*".into(),
            "the nftables mode is not implemented; as in kube-proxy's other modes, the section is unused",
        ),
        (
            windows,
            "winkernel.*, windows.*, windowsRunAsService".into(),
            "they apply to Windows nodes only, as in kube-proxy",
        ),
        (
            gates.is_some(),
            format!(
                "featureGates / --feature-gates ({})",
                gates.as_deref().unwrap_or_default()
            ),
            "kube-ipvs-proxy has no feature gates and behaves as kube-proxy with its defaults",
        ),
        (
            flags.kube_api_qps.is_some_and(|q| q != 0.0)
                || client.and_then(|c| c.qps).is_some_and(|q| q != 0.0),
            "clientConnection.qps / --kube-api-qps".into(),
            "API requests are not rate limited (one list, then watches)",
        ),
        (
            flags.kube_api_burst.is_some_and(|b| b != 0)
                || client.and_then(|c| c.burst).is_some_and(|b| b != 0),
            "clientConnection.burst / --kube-api-burst".into(),
            "API requests are not rate limited (one list, then watches)",
        ),
        (
            text(&flags.kube_api_content_type)
                || client.is_some_and(|c| text(&c.content_type) || text(&c.accept_content_types)),
            "clientConnection.contentType, acceptContentTypes / --kube-api-content-type".into(),
            "the API is read as JSON",
        ),
        (
            flags.profiling == Some(true) || file.enable_profiling == Some(true),
            "enableProfiling / --profiling".into(),
            "there is no /debug/pprof",
        ),
        (
            text(&flags.show_hidden_metrics_for_version)
                || text(&file.show_hidden_metrics_for_version),
            "showHiddenMetricsForVersion / --show-hidden-metrics-for-version".into(),
            "no metric is hidden",
        ),
        (
            flags.config_sync_period.is_some_and(|d| !d.is_zero())
                || file.config_sync_period.is_some_and(|d| !d.0.is_zero()),
            "configSyncPeriod / --config-sync-period".into(),
            "objects are watched and never re-listed on a timer",
        ),
        (
            text(&file.port_range),
            "portRange".into(),
            "it configured kube-proxy's removed userspace mode",
        ),
        (
            file.iptables.as_ref().and_then(|i| i.snat_node_internal_ip) == Some(true),
            "iptables.snatNodeInternalIP".into(),
            "masqueraded traffic takes the egress interface's address",
        ),
        (
            logging("format") && field("format").and_then(|f| f.as_str()) != Some("text"),
            "logging.format".into(),
            "logs are text lines on stderr",
        ),
        (
            logging("vmodule") || text(&always.vmodule),
            "logging.vmodule / --vmodule".into(),
            "set per-module levels with RUST_LOG",
        ),
        (
            logging("flushFrequency") || text(&always.log_flush_frequency),
            "logging.flushFrequency / --log-flush-frequency".into(),
            "log lines are written at once",
        ),
        (
            text(&always.logging_format),
            "--logging-format".into(),
            "logs are text lines on stderr",
        ),
        (
            always.log_text_split_stream.is_some()
                || always.log_json_split_stream.is_some()
                || text(&always.log_text_info_buffer_size)
                || text(&always.log_json_info_buffer_size),
            "--log-text-split-stream, --log-json-split-stream, --log-*-info-buffer-size".into(),
            "every log line goes to stderr unbuffered",
        ),
        (
            text(&always.boot_id_file) || text(&always.machine_id_file),
            "--boot-id-file, --machine-id-file".into(),
            "cAdvisor's flags, unused",
        ),
        (
            logging("options"),
            "logging.options".into(),
            "logs are text lines on stderr, unbuffered",
        ),
    ];
    checks
        .into_iter()
        .filter(|(set, _, _)| *set)
        .map(|(_, what, instead)| format!("{what} is not honoured: {instead}"))
        .collect()
}

/// Whether a YAML value is its type's zero (`0`, `""`, `false`, `null`, empty, or a
/// mapping of zeros such as kubeadm's `options: {json: {infoBufferSize: "0"}}`).
fn is_zero(value: &serde_norway::Value) -> bool {
    use serde_norway::Value;
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Sequence(items) => items.iter().all(is_zero),
        Value::Mapping(m) => m.values().all(is_zero),
        Value::Tagged(t) => is_zero(&t.value),
    }
}

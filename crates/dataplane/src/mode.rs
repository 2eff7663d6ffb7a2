//! The proxy mode: what is configured (`--proxy-mode`, `mode:`), whether IPVS is usable on
//! this node, and which dataplane runs. The choice itself ([`select`]) is a pure function of
//! the configuration and what detection found, so every case is unit-tested.

use std::fmt;

use crate::ipvs::IpvsProbe;

/// A proxy mode this daemon implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyMode {
    /// kube-proxy's IPVS mode (the default).
    Ipvs,
    /// kube-proxy's iptables mode: configured, or the fallback when IPVS is missing.
    Iptables,
}

impl ProxyMode {
    /// The name used in the configuration, on `/proxyMode` and in the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Iptables => "iptables",
        }
    }

    /// Parses a configured mode; empty means the default, `ipvs`.
    ///
    /// # Errors
    /// Any other mode, with the modes accepted.
    pub fn parse(s: &str) -> Result<ProxyMode, String> {
        match s {
            "" | "ipvs" => Ok(ProxyMode::Ipvs),
            "iptables" => Ok(ProxyMode::Iptables),
            other => Err(format!(
                "{other:?} is not a proxy mode this proxy implements (ipvs, iptables)"
            )),
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode that runs, and why it is not the configured one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The dataplane to run.
    pub mode: ProxyMode,
    /// Set when IPVS was configured but is missing: what is missing.
    pub fallback: Option<String>,
}

impl Selection {
    /// The configured mode, without detection (dry runs touch no kernel).
    pub fn configured(mode: ProxyMode) -> Selection {
        Selection {
            mode,
            fallback: None,
        }
    }

    /// The WARN line (and Event note) announcing a fallback.
    pub fn announcement(&self) -> Option<String> {
        self.fallback.as_ref().map(|missing| {
            format!(
                "IPVS is not usable on this node ({missing}): falling back to kube-proxy's \
                 iptables mode (KUBE-SERVICES chains written with iptables-restore); \
                 /proxyMode answers iptables. Load the modules, or run with --no-fallback to \
                 exit instead"
            )
        })
    }
}

/// IPVS was configured, is missing, and `--no-fallback` forbids the iptables mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "proxy mode ipvs: IPVS is not usable on this node ({missing}) and --no-fallback forbids \
     the iptables fallback"
)]
pub struct NoFallback {
    /// What is missing.
    pub missing: String,
}

/// Chooses the dataplane: the configured one, except that a configured `ipvs` whose checks
/// fail falls back to `iptables` unless `no_fallback`. `detect` runs only for `ipvs`.
///
/// # Errors
/// [`NoFallback`] when IPVS is missing and the fallback is forbidden.
pub fn select(
    configured: ProxyMode,
    no_fallback: bool,
    detect: impl FnOnce() -> IpvsProbe,
) -> Result<Selection, NoFallback> {
    if configured == ProxyMode::Iptables {
        return Ok(Selection::configured(ProxyMode::Iptables));
    }
    match detect().missing() {
        None => Ok(Selection::configured(ProxyMode::Ipvs)),
        Some(missing) if no_fallback => Err(NoFallback { missing }),
        Some(missing) => Ok(Selection {
            mode: ProxyMode::Iptables,
            fallback: Some(missing),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing_ip_vs() -> IpvsProbe {
        IpvsProbe {
            modules: Some("kernel modules missing: ip_vs (modprobe ip_vs failed)".into()),
            family: Some("IPVS is not available: no generic netlink family \"IPVS\"".into()),
        }
    }

    #[test]
    fn parses_the_modes_it_implements() {
        assert_eq!(ProxyMode::parse("ipvs"), Ok(ProxyMode::Ipvs));
        assert_eq!(ProxyMode::parse(""), Ok(ProxyMode::Ipvs));
        assert_eq!(ProxyMode::parse("iptables"), Ok(ProxyMode::Iptables));
        let err = ProxyMode::parse("nftables").unwrap_err();
        assert!(
            err.contains("\"nftables\"") && err.contains("ipvs, iptables"),
            "{err}"
        );
    }

    #[test]
    fn ipvs_present_runs_ipvs() {
        let s = select(ProxyMode::Ipvs, true, IpvsProbe::default).unwrap();
        assert_eq!(s, Selection::configured(ProxyMode::Ipvs));
        assert_eq!(s.announcement(), None);
    }

    #[test]
    fn ipvs_missing_falls_back_and_says_what_is_missing() {
        let s = select(ProxyMode::Ipvs, false, missing_ip_vs).unwrap();
        assert_eq!(s.mode, ProxyMode::Iptables);
        let line = s.announcement().unwrap();
        assert!(line.contains("ip_vs (modprobe ip_vs failed)"), "{line}");
        assert!(line.contains("generic netlink family \"IPVS\""), "{line}");
        assert!(
            line.contains("falling back to kube-proxy's iptables mode"),
            "{line}"
        );
    }

    #[test]
    fn a_missing_scheduler_alone_is_enough_to_fall_back() {
        let probe = || IpvsProbe {
            modules: Some("kernel modules missing: ip_vs_mh (not found)".into()),
            family: None,
        };
        let s = select(ProxyMode::Ipvs, false, probe).unwrap();
        assert_eq!(
            s.fallback.as_deref(),
            Some("kernel modules missing: ip_vs_mh (not found)")
        );
    }

    #[test]
    fn no_fallback_is_an_error_naming_what_is_missing() {
        let err = select(ProxyMode::Ipvs, true, missing_ip_vs).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ip_vs (modprobe ip_vs failed)"), "{msg}");
        assert!(msg.contains("--no-fallback"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn configured_iptables_never_probes_ipvs() {
        let s = select(ProxyMode::Iptables, true, || {
            panic!("detection ran for iptables mode")
        })
        .unwrap();
        assert_eq!(s, Selection::configured(ProxyMode::Iptables));
    }
}

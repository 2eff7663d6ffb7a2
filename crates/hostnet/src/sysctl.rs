//! The sysctls kube-proxy's IPVS mode sets, written only when they differ.
//!
//! `net.*` sysctls belong to the network namespace of the thread that opens
//! them, so the daemon (and a test inside a namespace) sees its own.

use std::path::{Path, PathBuf};

/// A sysctl key as a path under `/proc/sys`, e.g. `net/ipv4/vs/conntrack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub &'static str);

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.replace('/', "."))
    }
}

/// `net.ipv4.vs.conntrack`: keep conntrack entries for IPVS'ed packets, so
/// SNAT/MASQUERADE rules apply to them.
pub const VS_CONNTRACK: Key = Key("net/ipv4/vs/conntrack");
/// `net.ipv4.vs.conn_reuse_mode`.
pub const VS_CONN_REUSE_MODE: Key = Key("net/ipv4/vs/conn_reuse_mode");
/// `net.ipv4.vs.expire_nodest_conn`: drop connections to a deleted real server.
pub const VS_EXPIRE_NODEST_CONN: Key = Key("net/ipv4/vs/expire_nodest_conn");
/// `net.ipv4.vs.expire_quiescent_template`: expire persistence templates of
/// weight-0 real servers.
pub const VS_EXPIRE_QUIESCENT_TEMPLATE: Key = Key("net/ipv4/vs/expire_quiescent_template");
/// `net.ipv4.ip_forward`.
pub const IP_FORWARD: Key = Key("net/ipv4/ip_forward");
/// `net.ipv4.conf.all.arp_ignore` (strictARP).
pub const ARP_IGNORE: Key = Key("net/ipv4/conf/all/arp_ignore");
/// `net.ipv4.conf.all.arp_announce` (strictARP).
pub const ARP_ANNOUNCE: Key = Key("net/ipv4/conf/all/arp_announce");
/// `net.bridge.bridge-nf-call-iptables`: only checked, never written.
pub const BRIDGE_NF_CALL_IPTABLES: Key = Key("net/bridge/bridge-nf-call-iptables");
/// `net.ipv4.conf.all.route_localnet`: lets DNAT'ed packets to 127.0.0.0/8
/// be routed, which the iptables mode's localhost NodePorts need.
pub const ROUTE_LOCALNET: Key = Key("net/ipv4/conf/all/route_localnet");
/// `net.netfilter.nf_conntrack_tcp_be_liberal`: only read; when set, the
/// iptables mode writes no INVALID drop.
pub const TCP_BE_LIBERAL: Key = Key("net/netfilter/nf_conntrack_tcp_be_liberal");
/// `kernel.osrelease`: the running kernel's release, only read.
pub const OSRELEASE: Key = Key("kernel/osrelease");

/// A kernel version, major and minor (`6.1.0-13-amd64` → 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32);

impl KernelVersion {
    /// Parses `uname -r`/`/proc/sys/kernel/osrelease` text.
    ///
    /// ```
    /// use hostnet::KernelVersion;
    /// assert_eq!(KernelVersion::parse("6.1.0-13-amd64"), Some(KernelVersion(6, 1)));
    /// assert_eq!(KernelVersion::parse("5.10"), Some(KernelVersion(5, 10)));
    /// assert_eq!(KernelVersion::parse("garbage"), None);
    /// ```
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.trim().split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion(major, minor))
    }
}

/// One sysctl value to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key.
    pub key: Key,
    /// The value to write.
    pub value: &'static str,
}

/// The sysctls kube-proxy's IPVS mode sets (its `NewProxier`):
/// `vs/conntrack=1`, `vs/expire_nodest_conn=1`,
/// `vs/expire_quiescent_template=1`, `ip_forward=1`; `vs/conn_reuse_mode=0`
/// only on kernels from 4.1 to before 5.9 (later kernels fixed the slow-SYN
/// problem that setting worked around, kubernetes #93297); with strictARP,
/// `conf/all/arp_ignore=1` and `conf/all/arp_announce=2`.
///
/// ```
/// use hostnet::{ipvs_mode_settings, KernelVersion};
/// let s = ipvs_mode_settings(KernelVersion(5, 4), true);
/// assert_eq!(s.len(), 7);
/// assert_eq!(ipvs_mode_settings(KernelVersion(6, 1), false).len(), 4);
/// ```
pub fn ipvs_mode_settings(kernel: KernelVersion, strict_arp: bool) -> Vec<Setting> {
    let mut settings = vec![
        Setting {
            key: VS_CONNTRACK,
            value: "1",
        },
        Setting {
            key: VS_EXPIRE_NODEST_CONN,
            value: "1",
        },
        Setting {
            key: VS_EXPIRE_QUIESCENT_TEMPLATE,
            value: "1",
        },
        Setting {
            key: IP_FORWARD,
            value: "1",
        },
    ];
    if (KernelVersion(4, 1)..KernelVersion(5, 9)).contains(&kernel) {
        settings.push(Setting {
            key: VS_CONN_REUSE_MODE,
            value: "0",
        });
    }
    if strict_arp {
        settings.push(Setting {
            key: ARP_IGNORE,
            value: "1",
        });
        settings.push(Setting {
            key: ARP_ANNOUNCE,
            value: "2",
        });
    }
    settings
}

/// What [`Sysctls::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The value was already right; nothing was written.
    AlreadySet,
    /// The value was written; this was the old one.
    Changed {
        /// The value before.
        was: String,
    },
}

/// What [`Sysctls::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key has the expected value.
    Expected,
    /// The key has another value.
    Differs(String),
    /// The key does not exist (its module is not loaded).
    Missing,
}

/// Errors reading or writing sysctls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysctlError {
    /// The key does not exist: usually its module is not loaded.
    #[error("sysctl {key} does not exist{}", hint(*key))]
    Missing {
        /// The key.
        key: Key,
    },
    /// The key holds something that does not parse.
    #[error("sysctl {key} is {value:?}, which is not {expected}")]
    Unparsable {
        /// The key.
        key: Key,
        /// What it holds.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// Reading or writing failed otherwise.
    #[error("{op} sysctl {key}: {source}")]
    Io {
        /// `read` or `write`.
        op: &'static str,
        /// The key.
        key: Key,
        /// Why.
        source: std::io::Error,
    },
}

fn hint(key: Key) -> &'static str {
    if key.0.starts_with("net/ipv4/vs/") {
        " (is the ip_vs module loaded?)"
    } else if key.0.starts_with("net/bridge/") {
        " (is the br_netfilter module loaded?)"
    } else {
        ""
    }
}

/// Reads and writes sysctls under a root (`/proc/sys`, or a directory in
/// tests).
#[derive(Debug, Clone)]
pub struct Sysctls {
    root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls::with_root("/proc/sys")
    }
}

impl Sysctls {
    /// Sysctls under `root` instead of `/proc/sys`.
    pub fn with_root(root: impl AsRef<Path>) -> Self {
        Sysctls {
            root: root.as_ref().to_owned(),
        }
    }

    /// The current value, trimmed.
    ///
    /// # Errors
    /// [`SysctlError::Missing`] when the key does not exist,
    /// [`SysctlError::Io`] otherwise.
    pub fn read(&self, key: Key) -> Result<String, SysctlError> {
        std::fs::read_to_string(self.root.join(key.0))
            .map(|v| v.trim().to_owned())
            .map_err(|e| error("read", key, e))
    }

    /// Writes `value` unless the key already has it (kube-proxy's
    /// `EnsureSysctl`).
    ///
    /// ```no_run
    /// use hostnet::{Ensured, Sysctls, IP_FORWARD};
    /// let sysctls = Sysctls::default();
    /// if let Ensured::Changed { was } = sysctls.ensure(IP_FORWARD, "1")? {
    ///     println!("ip_forward was {was}");
    /// }
    /// # Ok::<(), hostnet::SysctlError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sysctls::read`], and [`SysctlError::Io`] when writing fails.
    pub fn ensure(&self, key: Key, value: &str) -> Result<Ensured, SysctlError> {
        let was = self.read(key)?;
        if was == value {
            return Ok(Ensured::AlreadySet);
        }
        std::fs::write(self.root.join(key.0), value).map_err(|e| error("write", key, e))?;
        Ok(Ensured::Changed { was })
    }

    /// Compares a key with the value it should have, without writing: for
    /// settings kube-proxy only checks and logs, such as
    /// [`BRIDGE_NF_CALL_IPTABLES`] (`Missing` when br_netfilter is not
    /// loaded, which is fine on a node without bridged pods).
    ///
    /// # Errors
    /// [`SysctlError::Io`] when the key exists but cannot be read.
    pub fn check(&self, key: Key, expected: &str) -> Result<Check, SysctlError> {
        match self.read(key) {
            Ok(value) if value == expected => Ok(Check::Expected),
            Ok(value) => Ok(Check::Differs(value)),
            Err(SysctlError::Missing { .. }) => Ok(Check::Missing),
            Err(e) => Err(e),
        }
    }

    /// The running kernel's version, from [`OSRELEASE`].
    ///
    /// # Errors
    /// As [`Sysctls::read`]; [`SysctlError::Unparsable`] when it is not a
    /// release such as `6.1.0-13-amd64`.
    pub fn kernel_version(&self) -> Result<KernelVersion, SysctlError> {
        let release = self.read(OSRELEASE)?;
        KernelVersion::parse(&release).ok_or(SysctlError::Unparsable {
            key: OSRELEASE,
            value: release,
            expected: "a kernel release",
        })
    }

    /// Applies kube-proxy's IPVS-mode settings ([`ipvs_mode_settings`]) for
    /// the running kernel, returning what each did.
    ///
    /// # Errors
    /// As [`Sysctls::kernel_version`] and [`Sysctls::ensure`].
    pub fn ensure_ipvs_mode(&self, strict_arp: bool) -> Result<Vec<(Key, Ensured)>, SysctlError> {
        self.ensure_all(&ipvs_mode_settings(self.kernel_version()?, strict_arp))
    }

    /// Applies every setting, returning what each did; stops at the first
    /// error.
    ///
    /// # Errors
    /// As [`Sysctls::ensure`].
    pub fn ensure_all(&self, settings: &[Setting]) -> Result<Vec<(Key, Ensured)>, SysctlError> {
        settings
            .iter()
            .map(|s| self.ensure(s.key, s.value).map(|e| (s.key, e)))
            .collect()
    }
}

fn error(op: &'static str, key: Key, source: std::io::Error) -> SysctlError {
    if source.kind() == std::io::ErrorKind::NotFound {
        SysctlError::Missing { key }
    } else {
        SysctlError::Io { op, key, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_reuse_mode_only_on_old_kernels() {
        let has = |k| {
            ipvs_mode_settings(k, false)
                .iter()
                .any(|s| s.key == VS_CONN_REUSE_MODE)
        };
        assert!(!has(KernelVersion(4, 0)));
        assert!(has(KernelVersion(4, 1)));
        assert!(has(KernelVersion(5, 8)));
        assert!(!has(KernelVersion(5, 9)));
        assert!(!has(KernelVersion(6, 18)));
    }

    #[test]
    fn ensure_writes_only_when_different() {
        let root = std::env::temp_dir().join(format!("hostnet-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(root.join("net/ipv4")).unwrap();
        std::fs::write(root.join("net/ipv4/ip_forward"), "0\n").unwrap();
        let s = Sysctls::with_root(&root);
        assert_eq!(
            s.ensure(IP_FORWARD, "1").unwrap(),
            Ensured::Changed { was: "0".into() }
        );
        assert_eq!(s.read(IP_FORWARD).unwrap(), "1");
        assert_eq!(s.ensure(IP_FORWARD, "1").unwrap(), Ensured::AlreadySet);
        assert_eq!(s.check(IP_FORWARD, "1").unwrap(), Check::Expected);
        assert_eq!(
            s.check(IP_FORWARD, "0").unwrap(),
            Check::Differs("1".into())
        );
        assert_eq!(
            s.check(BRIDGE_NF_CALL_IPTABLES, "1").unwrap(),
            Check::Missing
        );
        let err = s.ensure(VS_CONNTRACK, "1").unwrap_err();
        assert!(matches!(err, SysctlError::Missing { key } if key == VS_CONNTRACK));
        assert_eq!(
            err.to_string(),
            "sysctl net.ipv4.vs.conntrack does not exist (is the ip_vs module loaded?)"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_kernel_version_is_read_or_an_error() {
        let root = std::env::temp_dir().join(format!("hostnet-osrelease-{}", std::process::id()));
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        let s = Sysctls::with_root(&root);
        assert!(matches!(
            s.kernel_version(),
            Err(SysctlError::Missing { key }) if key == OSRELEASE
        ));
        std::fs::write(root.join("kernel/osrelease"), "6.12.48+deb13-amd64\n").unwrap();
        assert_eq!(s.kernel_version().unwrap(), KernelVersion(6, 12));
        std::fs::write(root.join("kernel/osrelease"), "unknown\n").unwrap();
        let err = s.kernel_version().unwrap_err();
        assert_eq!(
            err.to_string(),
            "sysctl kernel.osrelease is \"unknown\", which is not a kernel release"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}

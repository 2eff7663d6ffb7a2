//! kube-proxy's conntrack sysctls (its `setupConntrack` and `realConntracker`):
//! `nf_conntrack_max` from `maxPerCore` × CPUs (at least `min`) with the hash
//! size raised to a quarter of it, and the TCP and UDP timeouts. A value of
//! zero leaves the kernel's alone. Each is written only when it differs.

use std::path::{Path, PathBuf};

use crate::sysctl::{Ensured, Key, SysctlError, Sysctls};

/// `net.netfilter.nf_conntrack_max` (read-only outside the initial network
/// namespace).
pub const CONNTRACK_MAX: Key = Key("net/netfilter/nf_conntrack_max");
/// `net.netfilter.nf_conntrack_tcp_timeout_established`.
pub const CONNTRACK_TCP_TIMEOUT_ESTABLISHED: Key =
    Key("net/netfilter/nf_conntrack_tcp_timeout_established");
/// `net.netfilter.nf_conntrack_tcp_timeout_close_wait`.
pub const CONNTRACK_TCP_TIMEOUT_CLOSE_WAIT: Key =
    Key("net/netfilter/nf_conntrack_tcp_timeout_close_wait");
/// `net.netfilter.nf_conntrack_tcp_be_liberal`.
pub const CONNTRACK_TCP_BE_LIBERAL: Key = Key("net/netfilter/nf_conntrack_tcp_be_liberal");
/// `net.netfilter.nf_conntrack_udp_timeout`.
pub const CONNTRACK_UDP_TIMEOUT: Key = Key("net/netfilter/nf_conntrack_udp_timeout");
/// `net.netfilter.nf_conntrack_udp_timeout_stream`.
pub const CONNTRACK_UDP_TIMEOUT_STREAM: Key = Key("net/netfilter/nf_conntrack_udp_timeout_stream");

/// The conntrack table's hash size, a module parameter under `/sys`.
pub const HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// What to set; `None` leaves a value alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConntrackSettings {
    /// `nf_conntrack_max` (and the hash size, to a quarter of it).
    pub max: Option<u64>,
    /// `nf_conntrack_tcp_timeout_established`, seconds.
    pub tcp_established_timeout: Option<u64>,
    /// `nf_conntrack_tcp_timeout_close_wait`, seconds.
    pub tcp_close_wait_timeout: Option<u64>,
    /// `nf_conntrack_tcp_be_liberal=1` when true; left alone when false.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_udp_timeout`, seconds.
    pub udp_timeout: Option<u64>,
    /// `nf_conntrack_udp_timeout_stream`, seconds.
    pub udp_stream_timeout: Option<u64>,
}

/// kube-proxy's `getConntrackMax`: `max_per_core × cpus`, or `min` when that
/// is larger; nothing when `max_per_core` is 0 (or negative).
///
/// ```
/// use hostnet::conntrack_max;
/// assert_eq!(conntrack_max(32768, 131072, 2), Some(131072));
/// assert_eq!(conntrack_max(32768, 131072, 8), Some(262144));
/// assert_eq!(conntrack_max(0, 131072, 8), None);
/// ```
pub fn conntrack_max(max_per_core: i32, min: i32, cpus: usize) -> Option<u64> {
    let per_core = u64::try_from(max_per_core).ok().filter(|n| *n > 0)?;
    let scaled = per_core * cpus as u64;
    let floor = u64::try_from(min).unwrap_or(0);
    Some(scaled.max(floor))
}

/// The CPU count kube-proxy scales `maxPerCore` by: the online CPUs (it asks
/// cAdvisor, which reads `/sys/devices/system/cpu`), given the text of
/// `/sys/devices/system/cpu/online` (`0-3,6,8-9`).
///
/// ```
/// use hostnet::online_cpus;
/// assert_eq!(online_cpus("0-3,6,8-9\n"), Some(7));
/// assert_eq!(online_cpus("0\n"), Some(1));
/// assert_eq!(online_cpus(""), None);
/// ```
pub fn online_cpus(online: &str) -> Option<usize> {
    let mut count = 0;
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        count += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (count > 0).then_some(count)
}

/// What [`ConntrackSettings::apply`] did with the hash size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashsize {
    /// Not asked for (no `max`), or already at least a quarter of it.
    Unchanged,
    /// Written: the old and the new value.
    Raised {
        /// Before.
        was: u64,
        /// After.
        now: u64,
    },
    /// `/sys` is mounted read-only, so it was left as it is (kube-proxy logs and
    /// reports this and goes on).
    ReadOnlySysfs {
        /// The value it should have had.
        wanted: u64,
    },
}

/// Errors setting the conntrack sysctls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConntrackError {
    /// A sysctl could not be read or written.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// The hash size could not be read or written.
    #[error("{op} {path}: {source}")]
    Hashsize {
        /// `read` or `write`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ConntrackSettings {
    /// The sysctls to write, in kube-proxy's order.
    pub fn sysctls(&self) -> Vec<(Key, u64)> {
        [
            (CONNTRACK_MAX, self.max),
            (
                CONNTRACK_TCP_TIMEOUT_ESTABLISHED,
                self.tcp_established_timeout,
            ),
            (
                CONNTRACK_TCP_TIMEOUT_CLOSE_WAIT,
                self.tcp_close_wait_timeout,
            ),
            (CONNTRACK_TCP_BE_LIBERAL, self.tcp_be_liberal.then_some(1)),
            (CONNTRACK_UDP_TIMEOUT, self.udp_timeout),
            (CONNTRACK_UDP_TIMEOUT_STREAM, self.udp_stream_timeout),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect()
    }

    /// Writes every sysctl that differs, then raises the hash size (`hashsize`,
    /// normally [`HASHSIZE`]) to a quarter of `max` when it is below, unless
    /// `/sys` is read-only (`sysfs_writable`). Stops at the first error.
    ///
    /// # Errors
    /// [`ConntrackError`] naming the sysctl or file.
    pub fn apply(
        &self,
        sysctls: &Sysctls,
        hashsize: &Path,
        sysfs_writable: impl FnOnce() -> bool,
    ) -> Result<(Vec<(Key, Ensured)>, Hashsize), ConntrackError> {
        let ensured = self
            .sysctls()
            .into_iter()
            .map(|(key, value)| sysctls.ensure(key, &value.to_string()).map(|e| (key, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(max) = self.max else {
            return Ok((ensured, Hashsize::Unchanged));
        };
        let wanted = max / 4;
        let hash_error = |op, source| ConntrackError::Hashsize {
            op,
            path: hashsize.to_owned(),
            source,
        };
        let was: u64 = std::fs::read_to_string(hashsize)
            .map_err(|e| hash_error("read", e))?
            .trim()
            .parse()
            .map_err(|e| {
                hash_error(
                    "read",
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
        if was >= wanted {
            return Ok((ensured, Hashsize::Unchanged));
        }
        if !sysfs_writable() {
            return Ok((ensured, Hashsize::ReadOnlySysfs { wanted }));
        }
        std::fs::write(hashsize, wanted.to_string()).map_err(|e| hash_error("write", e))?;
        Ok((ensured, Hashsize::Raised { was, now: wanted }))
    }
}

/// Whether the first `sysfs` mount in `mounts` (`/proc/mounts` text) is
/// read-write, as kube-proxy's `isSysFSWritable` decides.
///
/// ```
/// use hostnet::sysfs_writable;
/// assert!(sysfs_writable("sysfs /sys sysfs rw,nosuid 0 0\n"));
/// assert!(!sysfs_writable("proc /proc proc rw 0 0\nsysfs /sys sysfs ro,nosuid 0 0\n"));
/// assert!(!sysfs_writable(""));
/// ```
pub fn sysfs_writable(mounts: &str) -> bool {
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"sysfs"))
        .and_then(|f| f.get(3).map(|o| o.split(',').next() == Some("rw")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/netfilter")).unwrap();
        dir
    }

    fn write(root: &Path, key: Key, value: &str) {
        std::fs::write(root.join(key.0), value).unwrap();
    }

    #[test]
    fn writes_what_differs_and_raises_the_hash_size() {
        let dir = root();
        for key in [
            CONNTRACK_MAX,
            CONNTRACK_TCP_TIMEOUT_ESTABLISHED,
            CONNTRACK_TCP_TIMEOUT_CLOSE_WAIT,
            CONNTRACK_UDP_TIMEOUT,
        ] {
            write(dir.path(), key, "65536\n");
        }
        write(dir.path(), CONNTRACK_TCP_TIMEOUT_CLOSE_WAIT, "3600\n");
        let hashsize = dir.path().join("hashsize");
        std::fs::write(&hashsize, "16384\n").unwrap();
        let settings = ConntrackSettings {
            max: conntrack_max(32768, 131072, 2),
            tcp_established_timeout: Some(86400),
            tcp_close_wait_timeout: Some(3600),
            ..ConntrackSettings::default()
        };
        let (ensured, hash) = settings
            .apply(&Sysctls::with_root(dir.path()), &hashsize, || true)
            .unwrap();
        assert_eq!(
            ensured,
            vec![
                (
                    CONNTRACK_MAX,
                    Ensured::Changed {
                        was: "65536".into()
                    }
                ),
                (
                    CONNTRACK_TCP_TIMEOUT_ESTABLISHED,
                    Ensured::Changed {
                        was: "65536".into()
                    }
                ),
                (CONNTRACK_TCP_TIMEOUT_CLOSE_WAIT, Ensured::AlreadySet),
            ]
        );
        assert_eq!(
            hash,
            Hashsize::Raised {
                was: 16384,
                now: 32768
            }
        );
        assert_eq!(std::fs::read_to_string(&hashsize).unwrap(), "32768");
        // The untouched UDP timeout (None) keeps its value.
        assert_eq!(
            Sysctls::with_root(dir.path())
                .read(CONNTRACK_UDP_TIMEOUT)
                .unwrap(),
            "65536"
        );
    }

    #[test]
    fn a_read_only_sys_leaves_the_hash_size_and_a_large_one_stays() {
        let dir = root();
        write(dir.path(), CONNTRACK_MAX, "131072");
        let hashsize = dir.path().join("hashsize");
        std::fs::write(&hashsize, "1024").unwrap();
        let settings = ConntrackSettings {
            max: Some(131072),
            ..ConntrackSettings::default()
        };
        let sysctls = Sysctls::with_root(dir.path());
        let (_, hash) = settings.apply(&sysctls, &hashsize, || false).unwrap();
        assert_eq!(hash, Hashsize::ReadOnlySysfs { wanted: 32768 });
        assert_eq!(std::fs::read_to_string(&hashsize).unwrap(), "1024");
        std::fs::write(&hashsize, "65536").unwrap();
        let (_, hash) = settings.apply(&sysctls, &hashsize, || false).unwrap();
        assert_eq!(hash, Hashsize::Unchanged);
    }

    #[test]
    fn zero_and_false_leave_everything_alone() {
        let dir = root();
        let settings = ConntrackSettings {
            max: conntrack_max(0, 131072, 4),
            ..ConntrackSettings::default()
        };
        assert!(settings.sysctls().is_empty());
        let (ensured, hash) = settings
            .apply(
                &Sysctls::with_root(dir.path()),
                Path::new("/nonexistent"),
                || panic!("not asked"),
            )
            .unwrap();
        assert!(ensured.is_empty());
        assert_eq!(hash, Hashsize::Unchanged);
    }
}

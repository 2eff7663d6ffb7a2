//! Node setup outside IPVS, iptables and ipsets, knowing nothing of
//! Kubernetes:
//!
//! - [`addresses`]: the node's own interface addresses (for NodePorts);
//! - [`dummy`]: the dummy interface (`kube-ipvs0`) that holds every virtual
//!   address, kept down as kube-proxy keeps it, its addresses synced by diff;
//! - [`sysctl`]: the sysctls kube-proxy's IPVS mode sets, written only when
//!   they differ;
//! - [`rtnl`]: the rtnetlink socket the others use (over the shared
//!   `netlink` socket);
//! - [`conntrack`]: kube-proxy's conntrack sysctls (table size, hash size,
//!   timeouts);
//! - [`oom`]: the process's `oom_score_adj`, as kube-proxy sets its own;
//! - [`modules`]: which kernel modules IPVS mode needs are loaded, built in
//!   or missing, loading them with `modprobe`.

pub mod addresses;
pub mod conntrack;
pub mod dummy;
pub mod modules;
pub mod oom;
pub mod rtnl;
pub mod sysctl;

pub use conntrack::{
    ConntrackError, ConntrackSettings, HASHSIZE, Hashsize, conntrack_max, online_cpus,
    sysfs_writable,
};
pub use dummy::{AddressChanges, Cause, DummyLink, KUBE_IPVS0, LinkError};
pub use modules::{Missing, ModuleError, ModuleState, Modules, ipvs_modules};
pub use oom::{OomError, set_oom_score_adj};
pub use rtnl::Rtnl;
pub use sysctl::{
    ARP_ANNOUNCE, ARP_IGNORE, BRIDGE_NF_CALL_IPTABLES, Check, Ensured, IP_FORWARD, KernelVersion,
    Key, OSRELEASE, ROUTE_LOCALNET, Setting, SysctlError, Sysctls, TCP_BE_LIBERAL,
    VS_CONN_REUSE_MODE, VS_CONNTRACK, VS_EXPIRE_NODEST_CONN, VS_EXPIRE_QUIESCENT_TEMPLATE,
    ipvs_mode_settings,
};

//! Helpers for the root-only test tiers: network namespaces that always get
//! deleted, veth links between them, and the real command-line tools
//! (`ip`, `ipvsadm`, `ipset`, `iptables`...) run with readable failures.
//!
//! Test tiers (see the README):
//! - unit tests run everywhere;
//! - `netns_*` tests are `#[ignore = "netns: ..."]` and run as root on the host by
//!   `tests/netns/run`;
//! - `vm_*` tests are `#[ignore = "vm: ..."]` and run inside a QEMU guest with
//!   Debian's kernel by `tests/vm/run`.
//!
//! Everything here panics with the command, its exit status and its output on
//! failure: these are test helpers, and a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apiserver;
pub mod cluster;
pub mod counting;
pub mod daemon;
pub mod kube_proxy;
pub mod load;
pub mod traffic;

pub use traffic::{
    EchoConn, UdpResponder, http_body, http_get, http_request, serve_echo, serve_http, serve_name,
    udp_ask,
};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Directories searched for the real tools, in order. `ip` from busybox is a
/// cut-down applet without `netns`, so a tool is never resolved to busybox.
const TOOL_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The path of a real (non-busybox) tool, e.g. `tool("ip")` → `/usr/sbin/ip`;
/// `sh` is always `/bin/sh`, whichever shell that is.
///
/// # Panics
/// When no such tool is installed.
pub fn tool(name: &str) -> PathBuf {
    if name == "sh" {
        return PathBuf::from("/bin/sh");
    }
    TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.exists()
                && std::fs::canonicalize(p)
                    .map(|real| real.file_name().is_some_and(|f| f != "busybox"))
                    .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("tool `{name}` not found in {TOOL_DIRS:?}"))
}

/// The path of busybox, for its `nc` and `httpd` applets.
pub fn busybox() -> PathBuf {
    TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join("busybox"))
        .find(|p| p.exists())
        .expect("busybox not found")
}

fn command_for(argv: &[&str]) -> Command {
    let (prog, args) = argv.split_first().expect("empty command");
    let path = if prog.contains('/') {
        PathBuf::from(prog)
    } else {
        tool(prog)
    };
    let mut cmd = Command::new(path);
    cmd.args(args);
    cmd
}

fn describe(argv: &[&str], out: &Output) -> String {
    format!(
        "`{}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command and returns its output, whatever its exit status.
pub fn try_run(argv: &[&str]) -> Output {
    command_for(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", argv.join(" ")))
}

/// Runs a command that must succeed and returns its standard output.
///
/// # Panics
/// When the command fails, with its exit status and both output streams.
pub fn run(argv: &[&str]) -> String {
    let out = try_run(argv);
    assert!(out.status.success(), "{}", describe(argv, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads kernel modules with `modprobe` (in the VM; the host has them built in or not at all).
pub fn modprobe(modules: &[&str]) {
    for module in modules {
        run(&["modprobe", module]);
    }
}

/// Runs a shell script with `sh -c` (busybox's or the host's), which must
/// succeed, and returns its standard output.
pub fn sh(script: &str) -> String {
    run(&["/bin/sh", "-c", script])
}

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

/// A network namespace made by a test and deleted (with every process left in
/// it) when dropped, even when the test panics.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: std::sync::Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `kipx-<tag>-<pid>-<n>` and brings its loopback up. The first
    /// call in a process also deletes the namespaces of test processes that
    /// no longer run (killed before their guards could drop).
    pub fn new(tag: &str) -> Self {
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(reap_orphans);
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("kipx-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            children: Default::default(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME prog args...`, with `prog` resolved to the real tool.
    fn argv(&self, argv: &[&str]) -> Vec<String> {
        let (prog, args) = argv.split_first().expect("empty command");
        let prog = if prog.contains('/') {
            PathBuf::from(prog)
        } else {
            tool(prog)
        };
        let mut full = vec![
            tool("ip").display().to_string(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ];
        full.push(prog.display().to_string());
        full.extend(args.iter().map(|a| (*a).to_string()));
        full
    }

    /// Runs a command inside the namespace and returns its output, whatever
    /// its exit status.
    pub fn try_run(&self, argv: &[&str]) -> Output {
        let full = self.argv(argv);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        try_run(&refs)
    }

    /// Runs a command inside the namespace that must succeed; returns stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        let full = self.argv(argv);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        run(&refs)
    }

    /// Runs a shell script inside the namespace that must succeed.
    pub fn sh(&self, script: &str) -> String {
        self.run(&["/bin/sh", "-c", script])
    }

    /// Starts a long-running process (a server) inside the namespace, its
    /// output discarded, and returns its pid. It is killed and reaped when the
    /// namespace is dropped.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let full = self.argv(argv);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let child = command_for(&refs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", argv.join(" ")));
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        pid
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns
    /// its result. Sockets opened by `f` stay in the namespace for their
    /// whole life, whichever thread uses them later: open netlink handles
    /// here to test a library against the namespace's kernel state.
    ///
    /// # Panics
    /// When the namespace cannot be entered, or when `f` panics.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("cannot open namespace {}: {e}", self.name));
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("cannot enter namespace {}: {e}", self.name));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Creates a dummy link, left down as kube-proxy keeps `kube-ipvs0`, and
    /// binds `addr` (with its prefix, e.g. `10.96.0.10/32`) to it.
    pub fn add_dummy(&self, name: &str, addr: &str) {
        self.run(&["ip", "link", "add", name, "type", "dummy"]);
        self.run(&["ip", "addr", "add", addr, "dev", name]);
    }

    /// The namespace's UDP conntrack flows to `dst` (`conntrack -L` lines);
    /// none when the table cannot be read.
    pub fn udp_flows_to(&self, dst: &str) -> Vec<String> {
        let out = self.try_run(&["conntrack", "-L", "-p", "udp"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("dst={dst} ")))
            .map(str::to_owned)
            .collect()
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.sh(&format!("echo {value} > {path}"));
    }
}

/// Kills what runs in namespace `name` and deletes it.
fn delete_netns(name: &str) {
    // Kill what the test left running, or the namespace would linger.
    if let Ok(out) = Command::new(tool("ip"))
        .args(["netns", "pids", name])
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new(tool("ip"))
        .args(["netns", "del", name])
        .status();
}

/// The pid in a name `kipx-<tag>-<pid>-<n>` made by [`Netns::new`].
fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    parts.next()?.parse::<usize>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.starts_with("kipx-").then_some(pid)
}

/// Deletes the namespaces [`Netns::new`] made in processes that are gone.
fn reap_orphans() {
    let Ok(out) = Command::new(tool("ip")).args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = owner_pid(name)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            delete_netns(name);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn only_names_made_by_netns_new_have_an_owner() {
        assert_eq!(owner_pid("kipx-iptmbench-6812-4"), Some(6812));
        assert_eq!(owner_pid("kipx-takeover-old-77-0"), Some(77));
        assert_eq!(owner_pid("kipx-demo-77-node"), None);
        assert_eq!(owner_pid("other-12-3"), None);
    }
}

static NEXT_LINK: AtomicUsize = AtomicUsize::new(0);

/// One end of a veth link: the namespace, the interface name inside it and
/// an address with prefix (e.g. `10.1.0.1/24`), or `None` for no address.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    /// Namespace holding this end.
    pub ns: &'a Netns,
    /// Interface name inside that namespace.
    pub ifname: &'a str,
    /// Address with prefix length, if any.
    pub addr: Option<&'a str>,
}

/// Connects two namespaces with a veth pair and brings both ends up.
///
/// The pair is created in the caller's namespace and moved, because creating
/// a peer into another namespace from inside a third one fails.
pub fn veth(a: End<'_>, b: End<'_>) {
    let n = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let (ta, tb) = (
        format!("kx{}a{n}", std::process::id() % 100_000),
        format!("kx{}b{n}", std::process::id() % 100_000),
    );
    run(&[
        "ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb,
    ]);
    for (tmp, end) in [(&ta, a), (&tb, b)] {
        run(&["ip", "link", "set", tmp, "netns", end.ns.name()]);
        end.ns.run(&["ip", "link", "set", tmp, "name", end.ifname]);
        if let Some(addr) = end.addr {
            end.ns.run(&["ip", "addr", "add", addr, "dev", end.ifname]);
        }
        end.ns.run(&["ip", "link", "set", end.ifname, "up"]);
    }
}

/// The smallest network that proxying needs: a client, a "node" that routes
/// between the two subnets (the proxy under test lives there) and a backend
/// ("pod"). The client is `192.168.7.2/24` behind the node's `192.168.7.1`;
/// the backend is `10.244.1.5/24` behind the node's `10.244.1.1`.
#[derive(Debug)]
pub struct ThreeHosts {
    /// The client namespace.
    pub client: Netns,
    /// The node namespace, with IP forwarding on.
    pub node: Netns,
    /// The backend namespace.
    pub backend: Netns,
}

impl ThreeHosts {
    /// The backend's address.
    pub const BACKEND: &'static str = "10.244.1.5";
    /// The client's address.
    pub const CLIENT: &'static str = "192.168.7.2";
    /// The node's address on the client side (its InternalIP).
    pub const NODE: &'static str = "192.168.7.1";
    /// The backend's IPv6 address, with [`ThreeHosts::dual_stack`].
    pub const BACKEND6: &'static str = "fd00:244::5";
    /// The client's IPv6 address, with [`ThreeHosts::dual_stack`].
    pub const CLIENT6: &'static str = "fd00:7::2";
    /// The node's IPv6 address on the client side, with [`ThreeHosts::dual_stack`].
    pub const NODE6: &'static str = "fd00:7::1";

    /// Creates the three namespaces and wires them up.
    pub fn new() -> Self {
        let (client, node, backend) = (Netns::new("client"), Netns::new("node"), Netns::new("pod"));
        veth(
            End {
                ns: &client,
                ifname: "eth0",
                addr: Some("192.168.7.2/24"),
            },
            End {
                ns: &node,
                ifname: "cli0",
                addr: Some("192.168.7.1/24"),
            },
        );
        veth(
            End {
                ns: &backend,
                ifname: "eth0",
                addr: Some("10.244.1.5/24"),
            },
            End {
                ns: &node,
                ifname: "pod0",
                addr: Some("10.244.1.1/24"),
            },
        );
        client.run(&["ip", "route", "add", "default", "via", "192.168.7.1"]);
        backend.run(&["ip", "route", "add", "default", "via", "10.244.1.1"]);
        node.sysctl("net.ipv4.ip_forward", "1");
        ThreeHosts {
            client,
            node,
            backend,
        }
    }

    /// [`ThreeHosts::new`] plus IPv6: the client is `fd00:7::2/64` behind the
    /// node's `fd00:7::1`, the backend `fd00:244::5/64` behind the node's
    /// `fd00:244::1`, and the node forwards IPv6 too. Addresses skip
    /// duplicate address detection, so they are usable at once.
    pub fn dual_stack() -> Self {
        let hosts = Self::new();
        for (ns, dev, addr) in [
            (&hosts.client, "eth0", "fd00:7::2/64"),
            (&hosts.node, "cli0", "fd00:7::1/64"),
            (&hosts.node, "pod0", "fd00:244::1/64"),
            (&hosts.backend, "eth0", "fd00:244::5/64"),
        ] {
            ns.run(&["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
        }
        hosts
            .client
            .run(&["ip", "-6", "route", "add", "default", "via", "fd00:7::1"]);
        hosts
            .backend
            .run(&["ip", "-6", "route", "add", "default", "via", "fd00:244::1"]);
        hosts.node.sysctl("net.ipv6.conf.all.forwarding", "1");
        hosts
    }

    /// Gives the backend namespace one more pod address (IPv4 `/24` or IPv6
    /// `/64`, on the backend's subnet), e.g. to act as a second backend.
    pub fn add_backend(&self, addr: &str) {
        let (prefix, extra): (&str, &[&str]) = if addr.contains(':') {
            ("64", &["nodad"])
        } else {
            ("24", &[])
        };
        let with_prefix = format!("{addr}/{prefix}");
        let mut argv = vec!["ip", "addr", "add", &with_prefix, "dev", "eth0"];
        argv.extend_from_slice(extra);
        self.backend.run(&argv);
    }
}

/// The IPVS table in `ns`, as `ipvsadm -Sn` prints it.
pub fn ipvs_table(ns: &Netns) -> String {
    ns.run(&["ipvsadm", "-Sn"])
}

impl Default for ThreeHosts {
    fn default() -> Self {
        Self::new()
    }
}

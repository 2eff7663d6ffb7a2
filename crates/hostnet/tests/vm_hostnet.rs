//! The dummy link, IPVS sysctls and module loading against Debian's kernel
//! in the test VM (this host has no dummy link type and no IPVS). Everything
//! happens inside a namespace the test creates, but for `nf_conntrack_max` and
//! the conntrack hash size, which only the VM's initial namespace can write.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use std::collections::BTreeSet;
use std::net::IpAddr;

use hostnet::{
    ConntrackSettings, DummyLink, Ensured, KUBE_IPVS0, KernelVersion, LinkError, ModuleError,
    ModuleState, Modules, Rtnl, Sysctls, ipvs_mode_settings, ipvs_modules,
};
use testkit::Netns;

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Runs `f` with an rtnetlink socket opened inside `ns`.
fn with_handle<R: Send>(ns: &Netns, f: impl FnOnce(&mut Rtnl) -> R + Send) -> R {
    ns.enter(|| f(&mut Rtnl::open().unwrap()))
}

fn addresses_shown(ns: &Netns, dev: &str) -> String {
    ns.run(&["ip", "-o", "addr", "show", "dev", dev])
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_kube_ipvs0_is_created_down_and_its_addresses_synced() {
    Modules::host().ensure(&["dummy"]).unwrap();
    let ns = Netns::new("kipvs0");
    // Someone else's interface and address: never touched.
    ns.run(&["ip", "link", "add", "other0", "type", "dummy"]);
    ns.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "other0"]);

    let link = with_handle(&ns, |h| {
        let link = DummyLink::ensure(h, KUBE_IPVS0).unwrap();
        assert_eq!(
            DummyLink::ensure(h, KUBE_IPVS0).unwrap(),
            link,
            "found, not recreated"
        );
        let want = ips(&["10.96.0.10", "10.96.0.11", "fd00::10"]);
        let changes = link.sync_addresses(h, &want).unwrap();
        assert_eq!(changes.added.len(), 3, "{changes:?}");
        assert!(
            link.sync_addresses(h, &want).unwrap().is_empty(),
            "second sync"
        );
        let changes = link
            .sync_addresses(h, &ips(&["10.96.0.10", "fd00::10"]))
            .unwrap();
        assert_eq!(changes.removed, [("10.96.0.11".parse().unwrap(), 32)]);
        assert!(matches!(
            DummyLink::find(h, "lo"),
            Err(LinkError::NotDummy { .. })
        ));
        assert_eq!(DummyLink::find(h, "nosuch0").unwrap(), None);
        link
    });

    let shown = addresses_shown(&ns, KUBE_IPVS0);
    assert!(
        shown.contains("10.96.0.10/32") && shown.contains("fd00::10/128"),
        "{shown}"
    );
    assert!(!shown.contains("10.96.0.11"), "{shown}");
    let state = ns.run(&["ip", "-o", "link", "show", KUBE_IPVS0]);
    assert!(
        state.contains("state DOWN") && !state.contains("<UP"),
        "kept down: {state}"
    );
    let local = ns.run(&["ip", "route", "show", "table", "local", "dev", KUBE_IPVS0]);
    assert!(
        local.contains("local 10.96.0.10"),
        "the VIP is local although the link is down: {local}"
    );
    assert!(addresses_shown(&ns, "other0").contains("192.0.2.1/24"));

    // Drift by hand, repaired by the next sync.
    ns.run(&["ip", "addr", "del", "10.96.0.10/32", "dev", KUBE_IPVS0]);
    ns.run(&["ip", "addr", "add", "10.96.0.50/32", "dev", KUBE_IPVS0]);
    let changes = with_handle(&ns, |h| {
        link.sync_addresses(h, &ips(&["10.96.0.10", "fd00::10"]))
            .unwrap()
    });
    assert_eq!(changes.added, ["10.96.0.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(changes.removed, [("10.96.0.50".parse().unwrap(), 32)]);
    assert!(addresses_shown(&ns, "other0").contains("192.0.2.1/24"));
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_modules_load_and_missing_ones_are_named() {
    let modules = Modules::host();
    let states = modules
        .ensure(&ipvs_modules(&["rr", "wrr", "sh", "mh"]))
        .unwrap();
    let lsmod = std::fs::read_to_string("/proc/modules").unwrap();
    for (name, state) in &states {
        assert!(state.is_present(), "{name}: {state:?}");
        if *state == ModuleState::Loaded {
            assert!(
                lsmod.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name}"
            );
        }
    }
    match modules.ensure(&["ip_vs", "ip_vs_nosuchscheduler"]) {
        Err(ModuleError::Missing(missing)) => {
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].module, "ip_vs_nosuchscheduler");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_sysctls_are_set_in_the_namespace() {
    Modules::host().ensure(&["ip_vs"]).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let kernel = KernelVersion::parse(&release).unwrap();
    let settings = ipvs_mode_settings(kernel, true);
    let ns = Netns::new("vssysctl");
    let sysctls = Sysctls::default();
    let first = ns.enter(|| sysctls.ensure_all(&settings)).unwrap();
    assert!(
        first
            .iter()
            .any(|(_, e)| matches!(e, Ensured::Changed { .. })),
        "{first:?}"
    );
    let second = ns.enter(|| sysctls.ensure_all(&settings)).unwrap();
    assert!(
        second.iter().all(|(_, e)| *e == Ensured::AlreadySet),
        "{second:?}"
    );
    for s in &settings {
        let seen = ns.sh(&format!("cat /proc/sys/{}", s.key.0));
        assert_eq!(seen.trim(), s.value, "{}", s.key);
    }
}

/// kube-proxy's `setupConntrack` in the VM's initial network namespace, where
/// `nf_conntrack_max` and the hash size are writable: the table size is set, the hash
/// size raised to a quarter of it, and a second run changes nothing. Outside that
/// namespace `nf_conntrack_max` is read-only, and the write error names it.
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_conntrack_max_and_hash_size_as_kube_proxy_sets_them() {
    Modules::host().ensure(&["nf_conntrack"]).unwrap();
    let sysctls = Sysctls::default();
    let hashsize = std::path::Path::new(hostnet::HASHSIZE);
    let before: u64 = sysctls
        .read(hostnet::conntrack::CONNTRACK_MAX)
        .unwrap()
        .parse()
        .unwrap();
    let max = before + 4 * 4096;
    let settings = ConntrackSettings {
        max: Some(max),
        tcp_established_timeout: Some(86400),
        ..ConntrackSettings::default()
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let (ensured, _) = settings
        .apply(&sysctls, hashsize, || hostnet::sysfs_writable(&mounts))
        .unwrap();
    assert!(
        matches!(ensured[0], (k, Ensured::Changed { .. }) if k == hostnet::conntrack::CONNTRACK_MAX),
        "{ensured:?}"
    );
    assert_eq!(
        sysctls.read(hostnet::conntrack::CONNTRACK_MAX).unwrap(),
        max.to_string()
    );
    let hash: u64 = std::fs::read_to_string(hashsize)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(hash >= max / 4, "hashsize {hash} < {}", max / 4);
    let (again, hash_again) = settings
        .apply(&sysctls, hashsize, || hostnet::sysfs_writable(&mounts))
        .unwrap();
    assert!(
        again.iter().all(|(_, e)| *e == Ensured::AlreadySet),
        "{again:?}"
    );
    assert_eq!(hash_again, hostnet::Hashsize::Unchanged);

    let ns = Netns::new("ctmax");
    let other = ConntrackSettings {
        max: Some(max + 4096),
        ..ConntrackSettings::default()
    };
    let err = ns
        .enter(|| other.apply(&sysctls, hashsize, || true))
        .expect_err("read-only outside the initial namespace");
    assert!(
        err.to_string().contains("net.netfilter.nf_conntrack_max"),
        "{err}"
    );
}

/// `(address, prefix)` of every `inet`/`inet6` line of `ip -o addr show ...`.
fn ip_addr_show(ns: &Netns, args: &[&str]) -> BTreeSet<(IpAddr, u8)> {
    let mut argv = vec!["ip", "-o", "addr", "show"];
    argv.extend(args);
    ns.run(&argv)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let (ip, prefix) = words.next()?.split_once('/')?;
            Some((ip.parse().unwrap(), prefix.parse().unwrap()))
        })
        .collect()
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_kube_ipvs0_address_dumps_match_ip_addr_show() {
    Modules::host().ensure(&["dummy"]).unwrap();
    let ns = Netns::new("kipvs0dump");
    ns.run(&["ip", "link", "add", "other0", "type", "dummy"]);
    ns.run(&["ip", "link", "set", "other0", "up"]);
    ns.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "other0"]);
    ns.run(&["ip", "addr", "add", "2001:db8::1/64", "dev", "other0"]);
    let (listed, node) = with_handle(&ns, |h| {
        let link = DummyLink::ensure(h, KUBE_IPVS0).unwrap();
        let vips: BTreeSet<IpAddr> = (0..300)
            .map(|i| IpAddr::from([10, 96, (i / 250) as u8, (i % 250) as u8 + 1]))
            .chain(ips(&["fd00::10", "fd00::11"]))
            .collect();
        link.sync_addresses(h, &vips).unwrap();
        ns.run(&["ip", "addr", "add", "10.97.0.1/24", "dev", KUBE_IPVS0]);
        let listed: BTreeSet<(IpAddr, u8)> =
            link.addresses(h).unwrap().list().iter().copied().collect();
        let node = hostnet::addresses::node_addresses(h, link.index()).unwrap();
        (listed, node)
    });
    assert_eq!(listed.len(), 303);
    assert_eq!(listed, ip_addr_show(&ns, &["dev", KUBE_IPVS0]));
    let mut others = ip_addr_show(&ns, &[]);
    others.retain(|a| !listed.contains(a));
    let others: BTreeSet<IpAddr> = others
        .into_iter()
        .map(|(ip, _)| ip)
        .filter(hostnet::addresses::usable)
        .collect();
    assert_eq!(node, others);
    assert!(node.contains(&"2001:db8::1".parse().unwrap()), "{node:?}");
}

/// Debian's 6.1 annotates none of the address refusals `ip addr add` can
/// provoke (IPv6 disabled on the link, `::1`, multicast: "RTNETLINK
/// answers: ..." without "Error: ..."); its netlink attribute policy
/// checks do annotate theirs (`validate_nla` in lib/nlattr.c): a link name
/// longer than `IFNAMSIZ - 1` is refused with `ERANGE` and "Attribute
/// failed policy validation".
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_kube_ipvs0_refusal_carries_the_kernels_text() {
    let ns = Netns::new("kipvs0extack");
    let name = "kube-ipvs0-name-too-long";
    let err = with_handle(&ns, |h| DummyLink::find(h, name).unwrap_err());
    assert_eq!(err.errno(), Some(libc::ERANGE), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "get link {name}: Numerical result out of range \
             (kernel: Attribute failed policy validation)"
        )
    );
}

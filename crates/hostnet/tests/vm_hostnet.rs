//! The dummy link, IPVS sysctls and module loading against Debian's kernel
//! in the test VM (this host has no dummy link type and no IPVS). Everything
//! happens inside a namespace the test creates.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use std::collections::BTreeSet;
use std::net::IpAddr;

use hostnet::{
    DummyLink, Ensured, KUBE_IPVS0, KernelVersion, LinkError, ModuleError, ModuleState, Modules,
    Sysctls, ipvs_mode_settings, ipvs_modules,
};
use testkit::Netns;

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Runs `f` with an rtnetlink handle opened inside `ns`.
fn with_handle<R: Send>(ns: &Netns, f: impl AsyncFnOnce(rtnetlink::Handle) -> R + Send) -> R {
    ns.enter(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            f(handle).await
        })
    })
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

    let link = with_handle(&ns, async |h| {
        let link = DummyLink::ensure(&h, KUBE_IPVS0).await.unwrap();
        assert_eq!(
            DummyLink::ensure(&h, KUBE_IPVS0).await.unwrap(),
            link,
            "found, not recreated"
        );
        let want = ips(&["10.96.0.10", "10.96.0.11", "fd00::10"]);
        let changes = link.sync_addresses(&h, &want).await.unwrap();
        assert_eq!(changes.added.len(), 3, "{changes:?}");
        assert!(
            link.sync_addresses(&h, &want).await.unwrap().is_empty(),
            "second sync"
        );
        let changes = link
            .sync_addresses(&h, &ips(&["10.96.0.10", "fd00::10"]))
            .await
            .unwrap();
        assert_eq!(changes.removed, [("10.96.0.11".parse().unwrap(), 32)]);
        assert!(matches!(
            DummyLink::find(&h, "lo").await,
            Err(LinkError::NotDummy { .. })
        ));
        assert_eq!(DummyLink::find(&h, "nosuch0").await.unwrap(), None);
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
    let changes = with_handle(&ns, async |h| {
        link.sync_addresses(&h, &ips(&["10.96.0.10", "fd00::10"]))
            .await
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

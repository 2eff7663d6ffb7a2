//! Benchmark (prints numbers, asserts no times): binding N host addresses to
//! `kube-ipvs0`, dumping them and unbinding them again, with the crate
//! (pipelined batches over the shared netlink socket) and with `ip -batch`
//! (iproute2, one request and acknowledgement at a time) as the real tool of
//! the same run, each in a fresh namespace; N = 10,000. Run with
//! `tests/vm/run vmbench_kube_ipvs0`.

#![allow(clippy::unwrap_used)] // helpers of a test binary panic to report, like the tests

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hostnet::{DummyLink, KUBE_IPVS0, Modules, Rtnl};
use testkit::Netns;

const ADDRESSES: usize = 10_000;

/// N distinct cluster IPs.
fn vips(n: usize) -> BTreeSet<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from([10, 96, (i / 250) as u8, (i % 250) as u8 + 1]))
        .collect()
}

/// Times `f`, printing the phase as it ends (the VM is slow: show progress).
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    let d = t.elapsed();
    eprintln!("BENCH hostnet:   {what}: {:.3} s", d.as_secs_f64());
    (out, d)
}

/// `ip -batch` over `lines` in `ns`.
fn ip_batch(ns: &Netns, tag: &str, lines: impl Iterator<Item = String>) {
    let script = std::env::temp_dir().join(format!("vmbench-hostnet-{tag}"));
    std::fs::write(&script, lines.collect::<Vec<_>>().join("\n") + "\n").unwrap();
    ns.run(&["ip", "-batch", &script.display().to_string()]);
}

#[test]
#[ignore = "vm: needs a kernel with dummy links; run tests/vm/run"]
fn vmbench_kube_ipvs0_bind_dump_unbind_vs_ip_batch() {
    Modules::host().ensure(&["dummy"]).unwrap();
    let want = vips(ADDRESSES);
    let ns_crate = Netns::new("bench-hostnet-crate");
    let ns_tool = Netns::new("bench-hostnet-tool");
    ns_tool.run(&["ip", "link", "add", KUBE_IPVS0, "type", "dummy"]);
    let (mut rtnl, link) = ns_crate.enter(|| {
        let mut rtnl = Rtnl::open().unwrap();
        let link = DummyLink::ensure(&mut rtnl, KUBE_IPVS0).unwrap();
        (rtnl, link)
    });

    let (changes, ours_bind) = timed("crate bind", || {
        link.sync_addresses(&mut rtnl, &want).unwrap()
    });
    assert_eq!(changes.added.len(), ADDRESSES);
    let ((), tool_bind) = timed("ip -batch addr add", || {
        ip_batch(
            &ns_tool,
            "add",
            want.iter()
                .map(|ip| format!("addr add {ip}/32 dev {KUBE_IPVS0}")),
        );
    });

    let (listed, ours_dump) = timed("crate dump", || link.addresses(&mut rtnl).unwrap());
    assert_eq!(listed.list().len(), ADDRESSES);
    let (shown, tool_dump) = timed("ip -o addr show", || {
        ns_tool.run(&["ip", "-o", "addr", "show", "dev", KUBE_IPVS0])
    });
    assert_eq!(shown.lines().count(), ADDRESSES);

    let (changes, ours_unbind) = timed("crate unbind", || {
        link.sync_bound(&mut rtnl, listed, &BTreeSet::new())
            .unwrap()
    });
    assert_eq!(changes.removed.len(), ADDRESSES);
    let ((), tool_unbind) = timed("ip -batch addr del", || {
        ip_batch(
            &ns_tool,
            "del",
            want.iter()
                .map(|ip| format!("addr del {ip}/32 dev {KUBE_IPVS0}")),
        );
    });
    assert!(link.addresses(&mut rtnl).unwrap().list().is_empty());

    let row = |what: &str, ours: Duration, tool: Duration, name: &str| {
        println!(
            "BENCH hostnet {what} {ADDRESSES}: ours {:.3} s, {name} {:.3} s, ratio {:.2}",
            ours.as_secs_f64(),
            tool.as_secs_f64(),
            ours.as_secs_f64() / tool.as_secs_f64()
        );
    };
    row("bind", ours_bind, tool_bind, "ip -batch");
    row("dump", ours_dump, tool_dump, "ip -o addr show");
    row("unbind", ours_unbind, tool_unbind, "ip -batch");
}

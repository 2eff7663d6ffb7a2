//! Benchmark (prints numbers, asserts no times): 100,000 `hash:ip,port`
//! entries added through the crate vs `ipset restore`, and listed through
//! the crate vs `ipset save`, each in a fresh network namespace.
//! Run with `tests/netns/run netns_bench_ipset` (add `--release` to the
//! cargo command line for optimised figures).

#![allow(clippy::unwrap_used)] // a benchmark panics like a test

use std::time::{Duration, Instant};

use ipset::{Contents, Entry, Family, HashLimits, Ipset, Member, Protocol, SetSpec, SetType};
use testkit::Netns;

const COUNT: u32 = 100_000;

fn spec() -> SetSpec {
    let limits = HashLimits {
        hashsize: 1024,
        maxelem: 262_144,
    };
    SetSpec::hash(
        "BENCH".parse().unwrap(),
        SetType::HashIpPort,
        Family::Inet,
        limits,
    )
    .unwrap()
}

fn entries() -> Vec<Member> {
    (0..COUNT)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 | (i >> 2)).into();
            let proto = if i % 2 == 0 {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            Member::new(Entry::IpPort {
                ip,
                proto,
                port: 80 + (i % 4) as u16,
            })
        })
        .collect()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_bench_ipset_add_100k_vs_ipset_restore() {
    let spec = spec();
    let members = entries();

    let ns = Netns::new("bench");
    let mut ipset = ns.enter(|| Ipset::open().unwrap());
    let ((), crate_add) = timed(|| {
        ipset.create(&spec).unwrap();
        ipset.add(&spec, &members).unwrap();
    });
    let (listed, crate_list) = timed(|| ipset.get(spec.name()).unwrap().unwrap());
    let Contents::Known { members: got, .. } = listed.contents else {
        panic!("not known")
    };
    assert_eq!(got.len(), members.len());
    let (_, crate_noop) = timed(|| ipset.sync_set(&spec, &members).unwrap());
    let (_, diff_time) = timed(|| ipset::diff(&got, &members));

    let ns2 = Netns::new("bench");
    let mut script = format!("{spec}\n");
    for m in &members {
        script += &format!("add {} {m}\n", spec.name());
    }
    let file = std::env::temp_dir().join(format!("{}-restore", ns2.name()));
    std::fs::write(&file, script).unwrap();
    let (_, tool_add) = timed(|| ns2.sh(&format!("ipset restore < {}", file.display())));
    let (saved, tool_save) = timed(|| ns2.run(&["ipset", "save", "BENCH"]));
    assert_eq!(saved.lines().count(), members.len() + 1);
    std::fs::remove_file(&file).unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("ipset bench: {COUNT} hash:ip,port entries");
    println!(
        "  add:  crate {:8.1} ms   ipset restore {:8.1} ms   ratio {:.2}",
        ms(crate_add),
        ms(tool_add),
        ms(crate_add) / ms(tool_add)
    );
    println!(
        "  list: crate {:8.1} ms   ipset save    {:8.1} ms   ratio {:.2}",
        ms(crate_list),
        ms(tool_save),
        ms(crate_list) / ms(tool_save)
    );
    println!(
        "  no-op sync_set (one dump, empty diff): {:.1} ms, of which diff {:.1} ms",
        ms(crate_noop),
        ms(diff_time)
    );
}

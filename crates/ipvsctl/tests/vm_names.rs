//! `ipvsctl-rs --names DIR` in the test VM: a table that `ipvsadm` programs
//! for the cluster in `testdata/names/` (plus virtual servers no Service owns)
//! is listed with the Service port of each virtual server and the Pod of each
//! real server, in text (ipvsadm's columns untouched), in JSON and in `watch`.

use testkit::{Netns, modprobe, tool};

mod common;
use common::{ours, ours_ok};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/names");
const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/names.ipvsadm");
const EXPECTED: &str = include_str!("../testdata/list-names.txt");

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvsctl_names_from_a_directory() {
    modprobe(&["ip_vs", "ip_vs_rr"]);
    let ns = Netns::new("names");
    ns.sh(&format!("{} -R < {TABLE}", tool("ipvsadm").display()));

    let text = ours_ok(&ns, &format!("list --names {DIR}"));
    println!("# ipvsctl-rs list --names {DIR}\n{text}");
    assert_eq!(text, EXPECTED);
    assert_eq!(ours_ok(&ns, &format!("-Ln --names {DIR}")), text);
    // Cut before the names, every line is ipvsadm's.
    let ipvsadm = ns.run(&["ipvsadm", "-Ln"]);
    let width = text
        .lines()
        .nth(1)
        .map_or(0, |l| l.len() - " Service".len());
    let cut: Vec<&str> = text
        .lines()
        .map(|l| l.get(..width).unwrap_or(l).trim_end())
        .collect();
    let plain: Vec<&str> = ipvsadm.lines().map(str::trim_end).collect();
    assert_eq!(cut, plain);
    // Without --names, nothing changes.
    assert_eq!(ours_ok(&ns, "-Ln"), ipvsadm);

    let json: serde_json::Value =
        serde_json::from_str(&ours_ok(&ns, &format!("list --json --names {DIR}")))
            .expect("one JSON document");
    let services = json["services"].as_array().expect("services");
    let named: Vec<(String, Vec<String>)> = services
        .iter()
        .map(|s| {
            let pods = s["real_servers"]
                .as_array()
                .expect("real servers")
                .iter()
                .map(|r| r["pod"].as_str().unwrap_or("-").to_owned())
                .collect();
            (s["service"].as_str().unwrap_or("-").to_owned(), pods)
        })
        .collect();
    let want = |service: &str, pods: &[&str]| {
        (
            service.to_owned(),
            pods.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        named,
        [
            want("shop/cart", &["shop/cart-0"]),
            want("-", &["-"]),
            want(
                "shop/web:http",
                &["shop/web-7d4b9-abcde", "shop/web-7d4b9-fghij", "-", "-"]
            ),
            want("shop/cart", &["shop/cart-0"]),
            want(
                "kube-system/kube-dns:dns-tcp",
                &["kube-system/coredns-5d78c-x2x4q"]
            ),
            want("-", &[]),
            want(
                "kube-system/kube-dns:dns",
                &["kube-system/coredns-5d78c-x2x4q"]
            ),
            want("-", &[]),
        ]
    );
    assert!(services.iter().all(|s| s.get("service").is_some()));

    let watch = ours_ok(&ns, &format!("watch --count 1 --names {DIR}"));
    assert!(
        watch
            .lines()
            .any(|l| l.contains("10.244.1.9:8080") && l.ends_with(" shop/cart-0")),
        "{watch}"
    );

    let missing = ours(&ns, "list --names /nonexistent/cluster");
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "ipvsctl-rs: --names /nonexistent/cluster: reading /nonexistent/cluster: \
         No such file or directory (os error 2)\n"
    );
}

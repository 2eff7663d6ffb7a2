//! How `ipvsctl-rs` fails on a kernel without IPVS (the host's): one line
//! of explanation and exit status 1, plus a pointer to `iptables-save` when
//! kube-proxy's iptables chains are there.

use testkit::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_ipvsctl_explains_a_kernel_without_ipvs() {
    if std::path::Path::new("/sys/module/ip_vs").exists() {
        eprintln!("skipped: this kernel has IPVS; the VM tier covers it");
        return;
    }
    let ns = Netns::new("noipvs");
    let out = ns.try_run(&[BIN, "-Ln"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("IPVS is not available"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    ns.run(&["iptables", "-t", "nat", "-N", "KUBE-SERVICES"]);
    let out = ns.try_run(&[BIN, "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .nth(1)
            .is_some_and(|l| l.contains("iptables-save")),
        "{err}"
    );
}

use super::*;

/// A fake root: /proc/modules, /sys/module, modules.builtin and a modprobe
/// script that "loads" a module by appending it to /proc/modules, failing
/// for names in `unavailable`.
struct FakeRoot {
    dir: PathBuf,
}

impl FakeRoot {
    fn new(tag: &str, loaded: &str, builtin: &str, sys: &[&str], unavailable: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("hostnet-mod-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["proc", "sbin", "lib/modules/6.1.0-test"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for name in sys {
            std::fs::create_dir_all(dir.join("sys/module").join(name).join("parameters")).unwrap();
        }
        std::fs::write(dir.join("proc/modules"), loaded).unwrap();
        std::fs::write(dir.join("lib/modules/6.1.0-test/modules.builtin"), builtin).unwrap();
        let refuse = unavailable
            .iter()
            .map(|m| format!("[ \"$2\" = {m} ] && {{ echo \"modprobe: FATAL: Module {m} not found\" >&2; exit 1; }}\n"))
            .collect::<String>();
        let script = format!(
            "#!/bin/sh\n{refuse}echo \"$2 16384 0 - Live 0x0\" >> {}\n",
            dir.join("proc/modules").display()
        );
        let modprobe = dir.join("sbin/modprobe");
        std::fs::write(&modprobe, script).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&modprobe)
            .status()
            .unwrap();
        FakeRoot { dir }
    }

    fn modules(&self) -> Modules {
        Modules::with_root(&self.dir, "6.1.0-test")
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PROC: &str = "ip_vs_rr 12288 1 - Live 0xffffffffc0a8f000\n\
    ip_vs 221184 3 ip_vs_rr, Live 0xffffffffc0a4c000\n\
    nf_defrag_ipv6 24576 2 nf_conntrack,ip_vs, Live 0xffffffffc0a45000\n";

#[test]
fn detects_loaded_builtin_and_absent_modules() {
    let root = FakeRoot::new(
        "state",
        PROC,
        "kernel/net/netfilter/nf_conntrack.ko\nkernel/net/netfilter/x_tables.ko\n",
        &["br_netfilter"],
        &[],
    );
    let m = root.modules();
    assert_eq!(m.state("ip_vs").unwrap(), ModuleState::Loaded);
    assert_eq!(
        m.state("ip-vs-rr").unwrap(),
        ModuleState::Loaded,
        "- and _ alike"
    );
    assert_eq!(m.state("nf_conntrack").unwrap(), ModuleState::BuiltIn);
    assert_eq!(
        m.state("br_netfilter").unwrap(),
        ModuleState::BuiltIn,
        "in /sys/module only"
    );
    assert_eq!(m.state("ip_vs_wrr").unwrap(), ModuleState::NotLoaded);
    assert_eq!(
        m.state("nf_defrag").unwrap(),
        ModuleState::NotLoaded,
        "no prefix match"
    );
}

#[test]
fn ensure_loads_what_it_can_and_names_what_is_missing() {
    let root = FakeRoot::new("ensure", PROC, "", &[], &["ip_vs_mh"]);
    let m = root.modules();
    match m.ensure(&ipvs_modules(&["rr", "sh", "mh"])) {
        Err(ModuleError::Missing(missing)) => {
            assert_eq!(missing.len(), 1, "{missing:?}");
            assert_eq!(missing[0].module, "ip_vs_mh");
            assert!(
                missing[0].reason.contains("Module ip_vs_mh not found"),
                "{}",
                missing[0].reason
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.state("ip_vs_sh").unwrap(),
        ModuleState::Loaded,
        "modprobe ran"
    );
    let states = m.ensure(&["ip_vs", "ip_vs_sh", "nf_conntrack"]).unwrap();
    assert!(
        states.iter().all(|(_, s)| *s == ModuleState::Loaded),
        "{states:?}"
    );
}

#[test]
fn host_without_ipvs_reports_missing_when_modprobe_is_absent() {
    let root = FakeRoot::new("nomodprobe", "", "", &[], &[]);
    std::fs::remove_file(root.dir.join("sbin/modprobe")).unwrap();
    let err = root.modules().ensure(&["ip_vs"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("kernel modules missing: ip_vs (cannot run"),
        "{err}"
    );
}

#[test]
fn unreadable_proc_modules_is_an_error() {
    let root = FakeRoot::new("noproc", "", "", &[], &[]);
    std::fs::remove_file(root.dir.join("proc/modules")).unwrap();
    assert!(matches!(
        root.modules().state("ip_vs"),
        Err(ModuleError::Read { .. })
    ));
}

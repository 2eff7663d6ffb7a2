//! Whether the running kernel has a scheduler or persistence engine, so
//! that a restore refuses an unknown name before applying anything instead
//! of the kernel refusing its line midway.
//!
//! The kernel finds a scheduler `NAME` in module `ip_vs_NAME` (an engine in
//! `ip_vs_pe_NAME`), loading it on demand. A module is there when it is
//! loaded (`/sys/module/MODULE`), built in (`modules.builtin`) or can be
//! loaded (`modules.dep`) under `/lib/modules/$(uname -r)`. Where those
//! files cannot be read (a container without the host's modules), nothing
//! can be said and every name is let through: the kernel decides, and a
//! restore undoes what it applied if it refuses.

use std::collections::HashSet;
use std::path::Path;

/// The modules the kernel has, as far as can be seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct KernelModules {
    /// Loaded, built-in and loadable module names (`-` as `_`), or `None`
    /// when the module lists cannot be read.
    known: Option<HashSet<String>>,
    /// Loaded modules, looked up in `/sys/module` when not in `known`.
    sys_module: Option<&'static Path>,
}

impl KernelModules {
    /// The running kernel's modules.
    pub(crate) fn system() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let dir = Path::new("/lib/modules").join(release.trim());
        let lists: Vec<String> = ["modules.dep", "modules.builtin"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .collect();
        KernelModules {
            known: (!lists.is_empty()).then(|| lists.iter().flat_map(|l| names(l)).collect()),
            sys_module: Some(Path::new("/sys/module")),
        }
    }

    /// Modules from the text of `modules.dep` or `modules.builtin` (tests).
    #[cfg(test)]
    pub(crate) fn from_lists(lists: &[&str]) -> Self {
        KernelModules {
            known: Some(lists.iter().flat_map(|l| names(l)).collect()),
            sys_module: None,
        }
    }

    /// Whether `module` can be used; `true` when that cannot be known.
    pub(crate) fn has(&self, module: &str) -> bool {
        let Some(known) = &self.known else {
            return true;
        };
        let module = module.replace('-', "_");
        known.contains(&module) || self.sys_module.is_some_and(|d| d.join(&module).exists())
    }
}

/// The module names of a `modules.dep` or `modules.builtin` text: each
/// line's first path, without directory and `.ko*` suffix.
fn names(list: &str) -> impl Iterator<Item = String> + '_ {
    list.lines().filter_map(|line| {
        let path = line.split(':').next()?.trim();
        let file = path.rsplit('/').next()?;
        let name = &file[..file.find(".ko")?];
        Some(name.replace('-', "_"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_from_dep_and_builtin() {
        let m = KernelModules::from_lists(&[
            "kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n\
             kernel/net/netfilter/ipvs/ip_vs_pe_sip.ko.zst: kernel/net/netfilter/nf_conntrack_sip.ko.zst\n",
            "kernel/net/netfilter/ipvs/ip_vs_wlc.ko\n",
        ]);
        assert!(m.has("ip_vs_rr"));
        assert!(m.has("ip_vs_wlc"));
        assert!(m.has("ip_vs_pe_sip"));
        assert!(!m.has("ip_vs_nosuch"));
        assert!(!m.has("ip_vs_r"));
        assert!(KernelModules::default().has("ip_vs_anything"));
    }
}

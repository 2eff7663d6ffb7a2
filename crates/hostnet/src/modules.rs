//! Kernel modules IPVS mode needs: is each one loaded, built in, or missing,
//! and loading the missing ones with `modprobe`. The daemon's IPVS→iptables
//! fallback uses [`Modules::ensure`] to say exactly which module is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The modules kube-proxy's IPVS mode needs for the given schedulers:
/// `ip_vs`, `ip_vs_<scheduler>` for each, and `nf_conntrack`.
///
/// ```
/// assert_eq!(
///     hostnet::ipvs_modules(&["rr", "mh"]),
///     ["ip_vs", "ip_vs_rr", "ip_vs_mh", "nf_conntrack"]
/// );
/// ```
pub fn ipvs_modules(schedulers: &[&str]) -> Vec<String> {
    let mut modules = vec!["ip_vs".to_owned()];
    modules.extend(schedulers.iter().map(|s| format!("ip_vs_{s}")));
    modules.push("nf_conntrack".to_owned());
    modules
}

/// Whether a module's code is in the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    /// Loaded as a module (listed in `/proc/modules`).
    Loaded,
    /// Compiled into the kernel (listed in `modules.builtin`, or present in
    /// `/sys/module` without being a loaded module).
    BuiltIn,
    /// Neither: it must be loaded before use.
    NotLoaded,
}

impl ModuleState {
    /// True when the module's code is available now.
    pub fn is_present(self) -> bool {
        self != ModuleState::NotLoaded
    }
}

/// Errors checking or loading modules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// A file that lists modules could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Modules that are neither loaded nor built in, and that `modprobe`
    /// could not load, each with modprobe's reason.
    #[error("kernel modules missing: {}", describe(.0))]
    Missing(Vec<Missing>),
}

/// A module that could not be made available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The module's name.
    pub module: String,
    /// What `modprobe` said (or why it could not run).
    pub reason: String,
}

fn describe(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(|m| format!("{} ({})", m.module, m.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where module information lives: the real host (`Modules::host`) or a
/// fake root directory for tests (`Modules::with_root`).
#[derive(Debug, Clone)]
pub struct Modules {
    proc_modules: PathBuf,
    sys_module: PathBuf,
    builtin: PathBuf,
    modprobe: PathBuf,
}

impl Modules {
    /// The running kernel's modules: `/proc/modules`, `/sys/module` and
    /// `/lib/modules/$(uname -r)/modules.builtin`, loaded with `modprobe`.
    pub fn host() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut modules = Modules::with_root(Path::new("/"), release.trim());
        modules.modprobe = PathBuf::from("modprobe");
        modules
    }

    /// The same files under `root` for kernel `release`; `modprobe` is
    /// `root/sbin/modprobe` (a test can put a script there).
    pub fn with_root(root: &Path, release: &str) -> Self {
        Modules {
            proc_modules: root.join("proc/modules"),
            sys_module: root.join("sys/module"),
            builtin: root
                .join("lib/modules")
                .join(release)
                .join("modules.builtin"),
            modprobe: root.join("sbin/modprobe"),
        }
    }

    /// Whether `name` is loaded, built in, or neither. Names compare with
    /// `-` and `_` alike, as the kernel does.
    ///
    /// # Errors
    /// [`ModuleError::Read`] when `/proc/modules` cannot be read. A missing
    /// `modules.builtin` counts as an empty one.
    pub fn state(&self, name: &str) -> Result<ModuleState, ModuleError> {
        let name = normalize(name);
        if self.loaded()?.contains(&name) {
            return Ok(ModuleState::Loaded);
        }
        if self.builtin()?.contains(&name) || self.sys_module.join(&name).is_dir() {
            return Ok(ModuleState::BuiltIn);
        }
        Ok(ModuleState::NotLoaded)
    }

    /// Loads every module in `names` that is not present, then reports each
    /// one's state.
    ///
    /// # Errors
    /// [`ModuleError::Missing`] listing every module still absent after
    /// `modprobe`, with its reason; [`ModuleError::Read`] as in
    /// [`Modules::state`].
    pub fn ensure<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Vec<(String, ModuleState)>, ModuleError> {
        let mut states = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for name in names.iter().map(AsRef::as_ref) {
            let mut state = self.state(name)?;
            if !state.is_present() {
                let failure = match self.modprobe(name) {
                    Ok(()) => {
                        state = self.state(name)?;
                        (!state.is_present())
                            .then(|| "modprobe succeeded but the module is not loaded".to_owned())
                    }
                    Err(reason) => Some(reason),
                };
                if let Some(reason) = failure {
                    missing.push(Missing {
                        module: name.to_owned(),
                        reason,
                    });
                }
            }
            states.push((name.to_owned(), state));
        }
        if missing.is_empty() {
            Ok(states)
        } else {
            Err(ModuleError::Missing(missing))
        }
    }

    fn modprobe(&self, name: &str) -> Result<(), String> {
        let out = Command::new(&self.modprobe)
            .args(["--", name])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.modprobe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(format!("modprobe {name} failed ({}): {stderr}", out.status))
        }
    }

    /// Names in `/proc/modules` (`ip_vs 180224 2 ip_vs_rr, Live 0x0`).
    fn loaded(&self) -> Result<BTreeSet<String>, ModuleError> {
        let text =
            std::fs::read_to_string(&self.proc_modules).map_err(|source| ModuleError::Read {
                path: self.proc_modules.clone(),
                source,
            })?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(normalize)
            .collect())
    }

    /// Names in `modules.builtin` (`kernel/net/netfilter/nf_conntrack.ko`).
    fn builtin(&self) -> Result<BTreeSet<String>, ModuleError> {
        let text = match std::fs::read_to_string(&self.builtin) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(source) => {
                return Err(ModuleError::Read {
                    path: self.builtin.clone(),
                    source,
                });
            }
        };
        Ok(text
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .filter_map(|f| f.strip_suffix(".ko"))
            .map(normalize)
            .collect())
    }
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
#[path = "modules_tests.rs"]
mod tests;

//! Whether IPVS is usable on this node: the modules IPVS mode needs, and the `IPVS`
//! generic-netlink family, each check's failure in one line.

use hostnet::modules::{ModuleError, Modules, ipvs_modules};

/// What IPVS detection found: each check's failure, in one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpvsProbe {
    /// Kernel modules (`ip_vs`, the schedulers', `nf_conntrack`) neither present nor loadable.
    pub modules: Option<String>,
    /// Why the generic-netlink family `IPVS` does not resolve.
    pub family: Option<String>,
}

impl IpvsProbe {
    /// Loads the modules IPVS mode needs for `schedulers` (as the IPVS dataplane would), then
    /// resolves the `IPVS` generic-netlink family.
    pub fn detect(schedulers: &[&str]) -> IpvsProbe {
        let modules = match Modules::host().ensure(&ipvs_modules(schedulers)) {
            Ok(_) => None,
            Err(e @ ModuleError::Missing(_)) => Some(one_line(&e.to_string())),
            Err(e) => Some(format!(
                "cannot check the kernel modules: {}",
                one_line(&e.to_string())
            )),
        };
        let family = ipvs::Client::new().err().map(|e| one_line(&e.to_string()));
        IpvsProbe { modules, family }
    }

    /// Why IPVS cannot be used, or `None` when it can.
    pub fn missing(&self) -> Option<String> {
        let reasons: Vec<&str> = [&self.modules, &self.family]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Joins a multi-line message (modprobe's stderr) into one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_tool_output_becomes_one_line() {
        assert_eq!(one_line("a\n\n  b \nc"), "a / b / c");
    }
}

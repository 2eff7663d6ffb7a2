//! The desired state in the formats operators already read: `ipvsadm -Sn`, the `kube-ipvs0`
//! addresses as `ip address add` commands, `ipset save` and `iptables-restore` input; or the
//! same as one JSON document.

use std::fmt::Write;
use std::net::IpAddr;

use ::ipvs::DestinationRule;
use ::ipvs::spelling::{self, Numeric};
use model::IpFamily;
use serde::Serialize;

use crate::ipset::SetKind;
use crate::iptables::Ruleset;
use crate::ipvs::VirtualServer;
use crate::state::DesiredState;

/// The name of the dummy interface VIPs are bound to.
pub const DUMMY_DEVICE: &str = "kube-ipvs0";

/// One virtual server and its real servers in `ipvsadm -Sn` format: the kernel values the
/// dataplane programs ([`VirtualServer::kernel_service`]), spelled by [`::ipvs::spelling`] as
/// `ipvsctl-rs save` spells what it reads back.
pub fn ipvsadm_save(vs: &VirtualServer, out: &mut String) {
    let service = vs.kernel_service();
    let _ = writeln!(out, "-A {}", spelling::service_options(&service, &Numeric));
    let switch = spelling::service_switch(&service.key, &Numeric);
    let protocol = spelling::name_protocol(&service.key);
    for rs in &vs.real_servers {
        let rule = DestinationRule::from(&rs.kernel_destination());
        let _ = writeln!(
            out,
            "-a {}",
            spelling::destination_options(&switch, protocol, &rule, &Numeric)
        );
    }
}

/// The `ipset save` lines for every kube-proxy set of a family, empty sets included (kube-proxy
/// creates them all).
pub fn ipset_save(state: &DesiredState, family: IpFamily, out: &mut String) {
    for kind in SetKind::ALL {
        let name = kind.name(family);
        let ty = kind.set_type();
        let _ = writeln!(
            out,
            "create {name} {} {}",
            ty.as_str(),
            ty.create_options(family)
        );
        for entry in state.set_entries(family, *kind) {
            let _ = writeln!(out, "add {name} {entry}");
        }
    }
}

/// The whole dry-run text.
///
/// # Errors
/// [`iptables::Error::InvalidRule`] when an iptables rule cannot be written
/// ([`Ruleset::build`]).
pub fn text(state: &DesiredState) -> Result<String, iptables::Error> {
    let mut out = String::from("# ipvsadm -Sn\n");
    for vs in state.virtual_servers() {
        ipvsadm_save(vs, &mut out);
    }
    let _ = writeln!(out, "\n# {DUMMY_DEVICE} addresses");
    for addr in state.addresses() {
        let prefix = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let _ = writeln!(out, "ip address add {addr}/{prefix} dev {DUMMY_DEVICE}");
    }
    for family in state.node().families() {
        let _ = writeln!(out, "\n# ipset save ({family})");
        ipset_save(state, family, &mut out);
    }
    for family in state.node().families() {
        let tool = match family {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        };
        let rules = Ruleset::build(family, state)?;
        let _ = writeln!(out, "\n# {tool}-restore --noflush ({family})");
        let _ = writeln!(
            out,
            "# jumps from built-in chains, each ensured at position 1:"
        );
        for j in rules.jumps() {
            let _ = writeln!(
                out,
                "#   -t {} -I {} 1 {}",
                j.table().as_str(),
                j.from,
                j.rule()?
            );
        }
        out.push_str(&rules.restore_payload());
    }
    Ok(out)
}

/// One ipset, for JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpSetJson {
    /// Family.
    pub family: IpFamily,
    /// Name.
    pub name: String,
    /// Type, e.g. `hash:ip,port`.
    #[serde(rename = "type")]
    pub set_type: &'static str,
    /// Create options.
    pub options: String,
    /// Entries in ipset's syntax.
    pub entries: Vec<String>,
}

/// One family's iptables rules, for JSON.
#[derive(Debug, Serialize)]
pub struct IptablesJson {
    /// Family.
    pub family: IpFamily,
    /// The rules.
    #[serde(flatten)]
    pub rules: Ruleset,
}

/// The whole dry-run as one JSON-serialisable document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Json<'a> {
    /// Virtual servers.
    pub virtual_servers: Vec<&'a VirtualServer>,
    /// Addresses for `kube-ipvs0`.
    pub addresses: Vec<IpAddr>,
    /// ipsets.
    pub ipsets: Vec<IpSetJson>,
    /// iptables rules.
    pub iptables: Vec<IptablesJson>,
}

/// The dry-run as a JSON-serialisable value.
///
/// # Errors
/// As [`text`].
pub fn json(state: &DesiredState) -> Result<Json<'_>, iptables::Error> {
    let families = state.node().families();
    Ok(Json {
        virtual_servers: state.virtual_servers().collect(),
        addresses: state.addresses().collect(),
        ipsets: families
            .iter()
            .flat_map(|family| {
                SetKind::ALL.iter().map(move |kind| IpSetJson {
                    family: *family,
                    name: kind.name(*family),
                    set_type: kind.set_type().as_str(),
                    options: kind.set_type().create_options(*family),
                    entries: state
                        .set_entries(*family, *kind)
                        .map(ToString::to_string)
                        .collect(),
                })
            })
            .collect(),
        iptables: families
            .iter()
            .map(|family| {
                Ok(IptablesJson {
                    family: *family,
                    rules: Ruleset::build(*family, state)?,
                })
            })
            .collect::<Result<_, iptables::Error>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{RealServer, ServicePortName, VirtualServer, VsKey};
    use model::{ObjectId, Protocol, SchedFlags, Scheduler};

    fn saved(scheduler: Scheduler, sched_flags: SchedFlags) -> String {
        let vs = VirtualServer {
            key: VsKey {
                protocol: Protocol::Tcp,
                addr: "10.96.0.10".parse().expect("address"),
                port: 80,
            },
            scheduler,
            sched_flags,
            persistence: None,
            real_servers: vec![RealServer::masqueraded(
                "10.244.1.5".parse().expect("address"),
                8080,
            )],
            service: ServicePortName {
                service: ObjectId::new("d", "web"),
                port: String::new(),
            },
            drain_timeout: None,
        };
        let mut out = String::new();
        ipvsadm_save(&vs, &mut out);
        out.lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn scheduler_flags_are_saved_as_ipvsadm_saves_them() {
        // ipvsadm.c print_service_entry and print_sched_flags: " -b " whenever SCHED1..3 is
        // set, then the scheduler's names for the flags it has names for.
        let both = SchedFlags::FLAG_1 | SchedFlags::FLAG_2;
        let cases = [
            (
                Scheduler::Rr,
                SchedFlags::empty(),
                "-A -t 10.96.0.10:80 -s rr",
            ),
            (
                Scheduler::Sh,
                both,
                "-A -t 10.96.0.10:80 -s sh -b sh-fallback,sh-port",
            ),
            (
                Scheduler::Mh,
                SchedFlags::FLAG_2,
                "-A -t 10.96.0.10:80 -s mh -b mh-port",
            ),
            (
                Scheduler::Mh,
                SchedFlags::FLAG_3,
                "-A -t 10.96.0.10:80 -s mh -b ",
            ),
            (
                Scheduler::Wrr,
                both,
                "-A -t 10.96.0.10:80 -s wrr -b flag-1,flag-2",
            ),
        ];
        for (scheduler, flags, line) in cases {
            assert_eq!(saved(scheduler, flags), line);
        }
    }
}

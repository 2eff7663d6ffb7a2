//! The operations a sync would apply, as the live pre-flight
//! (`--dry-run --diff`) prints them: each kernel table in the form of the
//! tool operators already read it with, one section per table, in the order
//! a sync applies them.
//!
//! - sysctls: `sysctl -w KEY=VALUE`;
//! - IPVS: `ipvsadm` commands (`-A`, `-E`, `-D`, `-a`, `-e`, `-d`), numeric,
//!   options spelled as `ipvsadm -Sn` spells them;
//! - `kube-ipvs0`: `ip link add` and `ip address add`/`del` commands;
//! - ipsets: `ipset restore` lines (`create`, `add`, `del`, `swap`, `destroy`);
//! - iptables: the `iptables-restore --noflush` (`ip6tables-restore`) input of each table;
//! - conntrack: the UDP flows deleted, as `conntrack -L` lists them.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipset::{Entry, Member, SetName, SetPlan, SetSpec};
use ipvs::spelling::{self, AddrPortSpelling, Numeric};
use ipvs::{Change, Destination, DestinationRule, ServiceKey};

/// One operation a sync would apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A sysctl written (`key` as `/proc/sys` path components joined by dots).
    Sysctl {
        /// The key, e.g. `net.ipv4.vs.conntrack`.
        key: String,
        /// The value written.
        value: &'static str,
    },
    /// The dummy link created.
    CreateLink(&'static str),
    /// A change to the IPVS table.
    Ipvs(Change),
    /// An address bound to `link`, as a host prefix.
    Bind {
        /// The link.
        link: &'static str,
        /// The address.
        ip: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// An address unbound from `link`.
    Unbind {
        /// The link.
        link: &'static str,
        /// The address.
        ip: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// One ipset brought to its members ([`SetPlan`]; never an empty one).
    Set(SetSpec, SetPlan),
    /// An ipset no longer wanted, destroyed.
    DestroySet(SetName),
    /// The `iptables-restore --noflush` input for one table.
    Restore {
        /// The family (`iptables-restore` or `ip6tables-restore`).
        family: iptables::Family,
        /// Its input.
        text: String,
    },
    /// A stale UDP conntrack flow deleted.
    DeleteFlow(String),
}

/// The sections of the output, in the order a sync applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Sysctl,
    Ipvs,
    Address,
    Ipset,
    Iptables,
    Conntrack,
}

impl Section {
    /// The heading line; the iptables tables head themselves (one tool per family).
    fn heading(self) -> Option<&'static str> {
        match self {
            Section::Sysctl => Some("# sysctl"),
            Section::Ipvs => Some("# ipvsadm"),
            Section::Address => Some("# ip"),
            Section::Ipset => Some("# ipset restore"),
            Section::Iptables => None,
            Section::Conntrack => Some("# conntrack -D"),
        }
    }
}

impl Op {
    fn section(&self) -> Section {
        match self {
            Op::Sysctl { .. } => Section::Sysctl,
            Op::Ipvs(_) => Section::Ipvs,
            Op::CreateLink(_) | Op::Bind { .. } | Op::Unbind { .. } => Section::Address,
            Op::Set(..) | Op::DestroySet(_) => Section::Ipset,
            Op::Restore { .. } => Section::Iptables,
            Op::DeleteFlow(_) => Section::Conntrack,
        }
    }

    /// Writes the operation's lines.
    fn render(&self, out: &mut String) -> fmt::Result {
        match self {
            Op::Sysctl { key, value } => writeln!(out, "sysctl -w {key}={value}"),
            Op::CreateLink(link) => writeln!(out, "ip link add {link} type dummy"),
            Op::Ipvs(change) => writeln!(out, "{}", IpvsadmCommand(change)),
            Op::Bind { link, ip, prefix } => {
                writeln!(out, "ip address add {ip}/{prefix} dev {link}")
            }
            Op::Unbind { link, ip, prefix } => {
                writeln!(out, "ip address del {ip}/{prefix} dev {link}")
            }
            Op::Set(spec, plan) => render_set(spec, plan, out),
            Op::DestroySet(name) => writeln!(out, "destroy {name}"),
            Op::Restore { family, text } => {
                writeln!(out, "# {}-restore --noflush", family.command())?;
                out.write_str(text)
            }
            Op::DeleteFlow(flow) => writeln!(out, "{flow}"),
        }
    }
}

/// `ipset restore` lines for one set's plan.
fn render_set(spec: &SetSpec, plan: &SetPlan, out: &mut String) -> fmt::Result {
    let adds = |spec: &SetSpec, members: &[Member], out: &mut String| {
        members
            .iter()
            .try_for_each(|m| writeln!(out, "add {} {m}", spec.name()))
    };
    match plan {
        SetPlan::Create(members) => {
            writeln!(out, "{spec}")?;
            adds(spec, members, out)
        }
        SetPlan::Change { add, del } => {
            del.iter()
                .try_for_each(|e: &Entry| writeln!(out, "del {} {e}", spec.name()))?;
            adds(spec, add, out)
        }
        SetPlan::Rebuild(members) => {
            let temp = spec.renamed(spec.name().temporary());
            writeln!(out, "{temp}")?;
            adds(&temp, members, out)?;
            writeln!(out, "swap {} {}", temp.name(), spec.name())?;
            writeln!(out, "destroy {}", temp.name())
        }
    }
}

/// An IPVS change as the `ipvsadm` command that makes it, numeric, spelled as `ipvsadm -Sn`
/// spells its rules ([`ipvs::spelling`]).
struct IpvsadmCommand<'a>(&'a Change);

impl fmt::Display for IpvsadmCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let real_server = |key: &ServiceKey, d: &Destination| {
            let switch = spelling::service_switch(key, &Numeric);
            let rule = DestinationRule::from(d);
            spelling::destination_options(&switch, spelling::name_protocol(key), &rule, &Numeric)
        };
        match self.0 {
            Change::AddService(s) => write!(f, "-A {}", spelling::service_options(s, &Numeric)),
            Change::EditService(s) => write!(f, "-E {}", spelling::service_options(s, &Numeric)),
            Change::DeleteService(key) => {
                write!(f, "-D {}", spelling::service_switch(key, &Numeric))
            }
            Change::AddDestination(key, d) => write!(f, "-a {}", real_server(key, d)),
            Change::EditDestination(key, d) => write!(f, "-e {}", real_server(key, d)),
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => write!(
                f,
                "-d {} -r {}",
                spelling::service_switch(service, &Numeric),
                Numeric.addr_port(addr, *port, None)
            ),
            // A kind of change the dataplane does not plan: named as the client names it.
            other => write!(f, "# {other}"),
        }
    }
}

/// Every operation a sync would apply, for the live pre-flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    ops: Vec<Op>,
}

impl Diff {
    /// The operations gathered, in the order each table's sync produced them.
    pub(crate) fn new(mut ops: Vec<Op>) -> Self {
        ops.retain(|op| !matches!(op, Op::Set(_, plan) if plan.is_empty()));
        ops.sort_by_key(Op::section);
        Diff { ops }
    }

    /// The operations, sorted by table as they print.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// True when the node is already as a sync would leave it.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Section by section, each under its heading; nothing at all when empty.
impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut section = None;
        for op in &self.ops {
            if section != Some(op.section()) {
                section = Some(op.section());
                if let Some(heading) = op.section().heading() {
                    writeln!(out, "{heading}")?;
                }
            }
            op.render(&mut out)?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::{ForwardMethod, Protocol, Scheduler, Service, ServiceFlags};

    fn key(protocol: Protocol, vip: &str, port: u16) -> ServiceKey {
        ServiceKey::inet(protocol, vip.parse().unwrap(), port)
    }

    fn real(addr: &str, port: u16, weight: u32) -> Destination {
        Destination::new(
            addr.parse().unwrap(),
            port,
            ForwardMethod::Masquerade,
            weight,
        )
    }

    /// The lines ipvsadm's own commands take, from ipvsadm(8): a sticky
    /// service with the sh scheduler's flags, a drained real server
    /// (`-e … -w 0`), and IPv6 addresses in brackets.
    #[test]
    fn ipvs_changes_print_as_ipvsadm_commands() {
        let web = key(Protocol::Tcp, "10.96.0.10", 80);
        let mut sticky = Service::new(
            key(Protocol::Udp, "10.96.0.11", 53),
            Scheduler::SourceHashing,
        );
        sticky.persistence = Some(ipvs::Persistence {
            timeout: 10800,
            prefix_len: 32,
        });
        sticky.flags = ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
        let v6 = key(Protocol::Tcp, "fd00::10", 443);
        let diff = Diff::new(vec![
            Op::Ipvs(Change::AddService(Service::new(web, Scheduler::RoundRobin))),
            Op::Ipvs(Change::EditService(sticky)),
            Op::Ipvs(Change::AddDestination(web, real("10.244.1.5", 8080, 1))),
            Op::Ipvs(Change::EditDestination(web, real("10.244.1.7", 8080, 0))),
            Op::Ipvs(Change::DeleteDestination {
                service: v6,
                addr: "fd00:1::5".parse().unwrap(),
                port: 8443,
            }),
            Op::Ipvs(Change::DeleteService(v6)),
        ]);
        assert_eq!(
            diff.to_string(),
            "# ipvsadm\n\
             -A -t 10.96.0.10:80 -s rr\n\
             -E -u 10.96.0.11:53 -s sh -p 10800 -b sh-fallback,sh-port\n\
             -a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1\n\
             -e -t 10.96.0.10:80 -r 10.244.1.7:8080 -m -w 0\n\
             -d -t [fd00::10]:443 -r [fd00:1::5]:8443\n\
             -D -t [fd00::10]:443\n"
        );
    }

    /// `ipset restore` takes these lines (ipset(8)): a missing set created
    /// and filled, a set changed by diff, a set rebuilt through its
    /// temporary twin and swapped in, one destroyed; a set already right
    /// prints nothing. Sections come in the order a sync applies them.
    #[test]
    fn sets_addresses_and_rules_print_in_their_tools_forms() {
        let name = |n: &str| n.parse::<SetName>().unwrap();
        let spec = |n: &str| {
            SetSpec::hash(
                name(n),
                ipset::SetType::HashIp,
                ipset::Family::Inet,
                Default::default(),
            )
            .unwrap()
        };
        let member = |e: &str| Member::new(e.parse().unwrap());
        let diff = Diff::new(vec![
            Op::Restore {
                family: iptables::Family::V4,
                text: "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n".into(),
            },
            Op::Set(spec("KUBE-A"), SetPlan::Create(vec![member("10.0.0.1")])),
            Op::Set(
                spec("KUBE-B"),
                SetPlan::Change {
                    add: vec![member("10.0.0.3")],
                    del: vec!["10.0.0.2".parse().unwrap()],
                },
            ),
            Op::Set(
                spec("KUBE-C"),
                SetPlan::Change {
                    add: vec![],
                    del: vec![],
                },
            ),
            Op::Set(spec("KUBE-D"), SetPlan::Rebuild(vec![member("10.0.0.4")])),
            Op::DestroySet(name("KUBE-E")),
            Op::Unbind {
                link: "kube-ipvs0",
                ip: "10.96.0.99".parse().unwrap(),
                prefix: 32,
            },
            Op::Bind {
                link: "kube-ipvs0",
                ip: "10.96.0.10".parse().unwrap(),
                prefix: 32,
            },
            Op::Sysctl {
                key: "net.ipv4.vs.conntrack".into(),
                value: "1",
            },
        ]);
        assert_eq!(diff.ops().len(), 8, "the set already right is left out");
        assert_eq!(
            diff.to_string(),
            "# sysctl\n\
             sysctl -w net.ipv4.vs.conntrack=1\n\
             # ip\n\
             ip address del 10.96.0.99/32 dev kube-ipvs0\n\
             ip address add 10.96.0.10/32 dev kube-ipvs0\n\
             # ipset restore\n\
             create KUBE-A hash:ip family inet hashsize 1024 maxelem 65536\n\
             add KUBE-A 10.0.0.1\n\
             del KUBE-B 10.0.0.2\n\
             add KUBE-B 10.0.0.3\n\
             create KUBE-D-TMP hash:ip family inet hashsize 1024 maxelem 65536\n\
             add KUBE-D-TMP 10.0.0.4\n\
             swap KUBE-D-TMP KUBE-D\n\
             destroy KUBE-D-TMP\n\
             destroy KUBE-E\n\
             # iptables-restore --noflush\n\
             *nat\n\
             :KUBE-SERVICES - [0:0]\n\
             COMMIT\n"
        );
        assert!(Diff::new(vec![]).is_empty());
        assert_eq!(Diff::new(vec![]).to_string(), "");
    }
}

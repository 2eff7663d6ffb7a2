//! The lines `ipvsadm -S`/`-Sn` writes for services and real servers
//! (`-A ... -s rr -p 300`, `-a ... -r ADDR:PORT -m -w 1`), read without
//! clap: building clap's matches costs more than everything else a restore
//! does per line (90 % of the parse, measured with callgrind).
//!
//! Only the plain shape is read here: a command, then separate options from
//! the save format, each at most once, values that do not start with `-`.
//! The options fill the same argument structs clap would fill, and go
//! through the same checks ([`crate::spec`]). Anything else (bundles,
//! attached values, long spellings, tunnels, a repeated or unknown option)
//! is left to clap, which parses every line form.

use ipvs::Change;

use crate::cli::{Forwarding, ServerArgs, ServerKey, ServiceArgs, VirtualService};
use crate::restore::Step;
use crate::spec::UsageError;
use crate::values::DEFAULT_SCHEDULER;

/// The options naming the virtual service: its four kinds, then `-6`.
const SERVICE: [&str; 5] = ["-t", "-u", "--sctp-service", "-f", "-6"];
/// Options that take no value.
const FLAGS: [&str; 5] = ["-6", "-o", "-g", "-i", "-m"];
/// Options that take one value (`-p`'s is optional).
const VALUED: [&str; 12] = [
    "-t",
    "-u",
    "--sctp-service",
    "-f",
    "-s",
    "-M",
    "--pe",
    "-b",
    "-r",
    "-w",
    "-x",
    "-y",
];

/// The options of one line, each seen once.
struct Options<'a>(Vec<(&'a str, Option<&'a str>)>);

impl<'a> Options<'a> {
    /// The options, or `None` for anything but the plain shape.
    fn read(tokens: &[&'a str]) -> Option<Self> {
        let mut seen: Vec<(&str, Option<&str>)> = Vec::with_capacity(tokens.len());
        let mut rest = tokens.iter().copied().peekable();
        while let Some(option) = rest.next() {
            let value = if FLAGS.contains(&option) {
                None
            } else if option == "-p" {
                rest.next_if(|v| !v.starts_with('-'))
            } else if VALUED.contains(&option) {
                Some(rest.next().filter(|v| !v.starts_with('-'))?)
            } else {
                return None;
            };
            if seen.iter().any(|(o, _)| *o == option) {
                return None;
            }
            seen.push((option, value));
        }
        Some(Options(seen))
    }

    fn has(&self, option: &str) -> bool {
        self.0.iter().any(|(o, _)| *o == option)
    }

    fn value(&self, option: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(o, _)| *o == option)
            .and_then(|(_, v)| v.map(str::to_owned))
    }

    /// The virtual service: exactly one of `-t -u --sctp-service -f`, and
    /// `-6` only with `-f`.
    fn service(&self) -> Option<VirtualService> {
        if SERVICE[..4].iter().filter(|k| self.has(k)).count() != 1
            || (self.has("-6") && !self.has("-f"))
        {
            return None;
        }
        Some(VirtualService {
            tcp: self.value("-t"),
            udp: self.value("-u"),
            sctp: self.value("--sctp-service"),
            fwmark: self.value("-f"),
            ipv6: self.has("-6"),
        })
    }

    /// Whether only the service's options and `allowed` were given.
    fn only(&self, allowed: &[&str]) -> bool {
        self.0
            .iter()
            .all(|(o, _)| SERVICE.contains(o) || allowed.contains(o))
    }
}

/// A `-A` or `-a` line of the plain shape, checked as clap's parse would
/// be; `None` for any other line.
pub(crate) fn parse(tokens: &[&str], line: usize) -> Option<Result<Step, UsageError>> {
    let (command, rest) = tokens.split_first()?;
    let opts = Options::read(rest)?;
    let step = |c: Change| Step::Changes(vec![(line, c)]);
    let service = opts.service()?;
    match *command {
        "-A" => {
            if !opts.only(&["-s", "-p", "-M", "--pe", "-b", "-o"]) {
                return None;
            }
            let args = ServiceArgs {
                service,
                scheduler: opts
                    .value("-s")
                    .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned()),
                persistent: opts
                    .has("-p")
                    .then(|| opts.value("-p").unwrap_or_else(|| "360".to_owned())),
                netmask: opts.value("-M"),
                pe: opts.value("--pe"),
                sched_flags: opts.value("-b"),
                ops: opts.has("-o"),
            };
            Some(
                args.to_service("add-service")
                    .map(|s| step(Change::AddService(s))),
            )
        }
        "-a" => {
            let allowed = ["-r", "-g", "-i", "-m", "-w", "-x", "-y"];
            let methods = ["-g", "-i", "-m"].iter().filter(|m| opts.has(m)).count();
            // Tunnelled real servers (-i) take tunnel options: clap's.
            if !opts.only(&allowed) || methods > 1 || opts.has("-i") || !opts.has("-r") {
                return None;
            }
            let args = ServerArgs {
                key: ServerKey {
                    service,
                    real_server: opts.value("-r"),
                },
                forwarding: Forwarding {
                    gatewaying: opts.has("-g"),
                    ipip: false,
                    masquerading: opts.has("-m"),
                },
                weight: opts.value("-w").unwrap_or_else(|| "1".to_owned()),
                u_threshold: opts.value("-x").unwrap_or_else(|| "0".to_owned()),
                l_threshold: opts.value("-y").unwrap_or_else(|| "0".to_owned()),
                tun_type: None,
                tun_port: None,
                checksum: Default::default(),
            };
            Some(
                args.to_destination("add-server")
                    .map(|(key, d)| step(Change::AddDestination(key, d))),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::KernelModules;
    use crate::testdata;

    fn tokens(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    /// What clap's path makes of a line.
    fn by_clap(line: &str) -> Result<Step, String> {
        let mut grammar = <crate::cli::Cli as clap::CommandFactory>::command();
        crate::restore::parse_with_clap(&mut grammar, &tokens(line), 1).map_err(|e| e.0)
    }

    #[test]
    fn save_lines_read_as_clap_reads_them() {
        let lines: Vec<&str> = testdata::SAVE
            .lines()
            .chain(testdata::TABLE.lines())
            .chain([
                "-A -t 10.0.0.1:80",
                "-A -t 10.0.0.1:0 -s rr",
                "-A -t 10.0.0.1:0 -s rr -p",
                "-A -t 10.0.0.1:80 -p -s rr",
                "-A -t 10.0.0.1:80 -s rr -p 0",
                "-A -t 10.0.0.1:80 -s rr -M 255.0.255.0",
                "-A -t 10.0.0.1:80 -s rr -o",
                "-A -u 10.0.0.1:80 -s rr -o -b sh-port",
                "-A -f 7 -6 -s mh -b mh-port,mh-fallback -p 60 -M 64",
                "-A -f 0 -s rr",
                "-a -t 10.0.0.1:80 -r 10.0.0.2",
                "-a -t 10.0.0.1:80 -r 10.0.0.2:81 -g -w 3",
                "-a -t 10.0.0.1:80 -r 10.0.0.2:81 -m -w 65536",
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 1 -x 10 -y 20",
                "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -g",
                "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -m",
                "-a -f 1 -r 192.168.1.10:0 -g -w 1",
                "-a -t 10.0.0.1:http -r 10.0.0.2:http -m",
                "-a -u 10.0.0.1:80 -r 300.0.0.2 -m",
            ])
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        let mut read_here = 0;
        for line in lines {
            if let Some(fast) = parse(&tokens(line), 1) {
                read_here += 1;
                assert_eq!(fast.map_err(|e| e.0), by_clap(line), "{line}");
            }
        }
        assert!(read_here > 40, "only {read_here} lines read here");
    }

    #[test]
    fn other_shapes_are_left_to_clap() {
        for line in [
            "-A -t 10.0.0.1:80 -s rr -s wrr",
            "-A -t 10.0.0.1:80 -u 10.0.0.1:80",
            "-A -t 10.0.0.1:80 -6",
            "-A -t10.0.0.1:80",
            "-A --tcp-service 10.0.0.1:80",
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1",
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g",
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 1",
            "-a -t 10.0.0.1:80 -m",
            "-A -t 10.0.0.1:80 -r 10.0.0.2",
            "-E -t 10.0.0.1:80 -s rr",
            "-D -t 10.0.0.1:80",
            "-A -t 10.0.0.1:80 -s",
        ] {
            assert!(parse(&tokens(line), 1).is_none(), "{line}");
        }
        // Clap's path still reads what this one leaves.
        let steps = crate::restore::parse(
            b"-A -t10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type ipip\n",
            &KernelModules::default(),
        );
        assert!(steps.is_ok(), "{steps:?}");
    }
}

//! `ipvsadm -R` input: one ipvsadm command per line, as `ipvsadm -S` and
//! `-Sn` write them, and as people write by hand.
//!
//! Lines are read like ipvsadm's `config_stream_read`: tokens split on
//! blanks, a leading `ipvsadm` skipped; in addition, everything from `#`
//! on is ignored (ipvsadm passes `#` on as an argument and fails).
//! Input is bytes: a line whose command part is not UTF-8 is refused with
//! its number; a comment may hold any bytes.
//! Each line is parsed with the same grammar as the command line
//! ([`crate::compat`], [`crate::cli`], [`crate::spec`]). The whole input
//! is parsed before anything is applied: the first bad line is reported
//! with its number and nothing is applied.
//!
//! Port names (`:http`) are looked up in `/etc/services`; host names are
//! resolved by the system resolver. Accepted commands: `-A -E -D -a -e -d
//! -C -Z --set` (and their subcommand spellings).

use ipvs::{Change, ServiceKey, Timeouts};

use crate::cli::{Cli, Command, TimeoutsArgs};
use crate::modules::KernelModules;
use crate::spec::UsageError;
use crate::{compat, save_lines, values};

/// One thing to do, in input order, with the number of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `-C`: delete every service (no line: `restore --flush`).
    Flush(Option<usize>),
    /// Consecutive edits, applied in one pipelined batch; each with its
    /// line number.
    Changes(Vec<(usize, Change)>),
    /// `--set`.
    SetTimeouts(usize, Timeouts),
    /// `-Z`, for one service or all.
    Zero(usize, Option<ServiceKey>),
}

/// The first bad line of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}: {text}")]
pub(crate) struct ParseError {
    /// Its number, from 1.
    pub(crate) line: usize,
    /// The line as read.
    pub(crate) text: String,
    /// What is wrong with it.
    pub(crate) message: String,
}

/// The longest part of a bad line an error quotes.
const QUOTE_MAX: usize = 120;

/// Parses a whole restore input, read as bytes: everything from `#` on is
/// ignored whatever its bytes, the rest of a line must be UTF-8. Schedulers
/// and persistence engines must exist in the kernel (`modules`).
///
/// # Errors
/// The first line that is not a valid command.
pub(crate) fn parse(input: &[u8], modules: &KernelModules) -> Result<Vec<Step>, ParseError> {
    // Building clap's command costs more than parsing a line with it:
    // build it once for the whole input.
    let mut grammar = <Cli as clap::CommandFactory>::command();
    let mut steps: Vec<Step> = Vec::new();
    for (i, bytes) in input.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let command = bytes.split(|b| *b == b'#').next().unwrap_or_default();
        let bad = |message: String| ParseError {
            line,
            text: cut(&String::from_utf8_lossy(bytes)),
            message: cut(&message),
        };
        let text = std::str::from_utf8(command).map_err(|e| {
            let at = e.valid_up_to();
            bad(format!(
                "byte 0x{:02x} at column {} is not UTF-8",
                command[at],
                at + 1
            ))
        })?;
        let tokens = tokens(text);
        if tokens.is_empty() {
            continue;
        }
        let step = parse_line(&mut grammar, &tokens, line)
            .and_then(|step| check_modules(&step, modules).map(|()| step))
            .map_err(|e| bad(e.0))?;
        match (steps.last_mut(), step) {
            (Some(Step::Changes(batch)), Step::Changes(more)) => batch.extend(more),
            (_, step) => steps.push(step),
        }
    }
    Ok(steps)
}

/// Text as an error quotes it (a line, or a message quoting a token of
/// it): trimmed, at most [`QUOTE_MAX`] characters, and its length when it
/// is cut.
fn cut(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_MAX) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
    }
}

/// Refuses a service whose scheduler or persistence engine the kernel does
/// not have (it would refuse the line with ENOENT).
fn check_modules(step: &Step, modules: &KernelModules) -> Result<(), UsageError> {
    let Step::Changes(changes) = step else {
        return Ok(());
    };
    for (_, change) in changes {
        let (Change::AddService(svc) | Change::EditService(svc)) = change else {
            continue;
        };
        let scheduler = svc.scheduler.module();
        if !modules.has(&scheduler) {
            return Err(UsageError(format!(
                "unknown scheduler `{}' (this kernel has no module {scheduler})",
                svc.scheduler
            )));
        }
        if let Some(pe) = &svc.persistence_engine {
            let module = format!("ip_vs_pe_{pe}");
            if !modules.has(&module) {
                return Err(UsageError(format!(
                    "unknown persistence engine `{pe}' (this kernel has no module {module})"
                )));
            }
        }
    }
    Ok(())
}

/// The tokens of a line without its comment: blank-separated, without
/// `ipvsadm`.
fn tokens(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|t| *t != "ipvsadm")
        .collect()
}

/// One line's step: the save format's plain lines directly
/// ([`crate::save_lines`]), every other form through clap.
fn parse_line(
    grammar: &mut clap::Command,
    tokens: &[&str],
    line: usize,
) -> Result<Step, UsageError> {
    match save_lines::parse(tokens, line) {
        Some(step) => step,
        None => parse_with_clap(grammar, tokens, line),
    }
}

/// One line's step, parsed by clap with the command line's grammar.
pub(crate) fn parse_with_clap(
    grammar: &mut clap::Command,
    tokens: &[&str],
    line: usize,
) -> Result<Step, UsageError> {
    let tokens: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
    let args = if compat::is_ipvsadm_form(&tokens) {
        compat::rewrite(&tokens)?
    } else {
        tokens
    };
    let argv = std::iter::once("ipvsctl-rs".to_owned()).chain(args);
    let clap_error = |e: clap::Error| {
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        UsageError(first.trim_start_matches("error: ").to_owned())
    };
    let matches = grammar.try_get_matches_from_mut(argv).map_err(clap_error)?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(clap_error)?;
    let change = |c: Change| Ok(Step::Changes(vec![(line, c)]));
    match cli.command {
        Some(Command::AddService(a)) => change(Change::AddService(a.to_service("add-service")?)),
        Some(Command::EditService(a)) => change(Change::EditService(a.to_service("edit-service")?)),
        Some(Command::DeleteService(vs)) => {
            change(Change::DeleteService(vs.required_key("delete-service")?))
        }
        Some(Command::AddServer(a)) => {
            let (key, d) = a.to_destination("add-server")?;
            change(Change::AddDestination(key, d))
        }
        Some(Command::EditServer(a)) => {
            let (key, d) = a.to_destination("edit-server")?;
            change(Change::EditDestination(key, d))
        }
        Some(Command::DeleteServer(k)) => {
            let (service, addr, port) = k.resolve("delete-server", None)?;
            change(Change::DeleteDestination {
                service,
                addr,
                port,
            })
        }
        Some(Command::Flush) => Ok(Step::Flush(Some(line))),
        Some(Command::Zero(vs)) => Ok(Step::Zero(line, vs.key()?)),
        Some(Command::Timeouts(TimeoutsArgs { set: Some(v), .. })) => {
            Ok(Step::SetTimeouts(line, timeouts(&v)?))
        }
        _ => Err(UsageError(
            "not a table command (expected -A -E -D -a -e -d -C -Z or --set)".into(),
        )),
    }
}

/// What `restore --dry-run` prints for a step.
pub(crate) fn describe(step: &Step) -> String {
    match step {
        Step::Flush(_) => "flush\n".to_owned(),
        Step::Changes(c) => c
            .iter()
            .map(|(line, c)| format!("line {line}: {c}\n"))
            .collect(),
        Step::SetTimeouts(_, t) => format!("set timeouts {} {} {}\n", t.tcp, t.tcp_fin, t.udp),
        Step::Zero(_, k) => format!("zero {}\n", k.map(|k| k.to_string()).unwrap_or_default()),
    }
}

/// `--set TCP TCPFIN UDP`, each 0 (unchanged) to 31 days.
pub(crate) fn timeouts(values: &[String]) -> Result<Timeouts, UsageError> {
    let n = |i: usize| -> Result<u32, UsageError> {
        let v = values.get(i).map(String::as_str).unwrap_or_default();
        Ok(values::number(v, 0, values::MAX_TIMEOUT, "timeout")?)
    };
    Ok(Timeouts {
        tcp: n(0)?,
        tcp_fin: n(1)?,
        udp: n(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::{
        Destination, ForwardMethod, Persistence, Protocol, Scheduler, Service, TunnelFlags,
        TunnelType,
    };

    fn changes(input: &str) -> Vec<Change> {
        match parse(input.as_bytes(), &KernelModules::default())
            .unwrap()
            .as_slice()
        {
            [Step::Changes(c)] => c.iter().map(|(_, c)| c.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn key(s: &str) -> ServiceKey {
        let (a, p) = s.rsplit_once(':').unwrap();
        ServiceKey::inet(
            Protocol::Tcp,
            a.trim_matches(['[', ']']).parse().unwrap(),
            p.parse().unwrap(),
        )
    }

    #[test]
    fn every_save_line_form_parses() {
        let input = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.244.1.5:8080 -m -w 1
-A -t 10.0.0.2:443 -s rr -p 10800
-A -u 10.0.0.10:53 -s sh -b sh-fallback,sh-port
-A -t 10.0.0.3:80 -s wlc -p 300 -M 255.255.255.0
-A -u 10.0.0.4:5060 -s rr -p 360 --pe sip
-A -u 10.0.0.5:53 -s rr -o
-A -f 1 -s rr
-a -f 1 -r 192.168.1.10:0 -g -w 1
-A -t [2001:db8::1]:80 -s wrr
-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -g -w 5
-A -f 7 -6 -s mh -b mh-port
-A -f 8 -6 -s rr -p 60 -M 64
-A --sctp-service 10.0.0.6:9 -s fo
-a -t 10.0.0.1:80 -r 192.168.9.9:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.0.0.1:80 -r 192.168.9.8:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t 10.0.0.1:80 -r 192.168.9.7:80 -i -w 1 --tun-type ipip
-a -t 10.0.0.1:80 -r 192.168.9.6:80 -i -w 0
-A -t 10.0.0.7:80 -s rr -b flag-1,flag-2,flag-3
";
        let c = changes(input);
        assert_eq!(c.len(), input.lines().count());
        let Change::AddService(sh) = &c[3] else {
            panic!()
        };
        assert_eq!(sh.scheduler, Scheduler::SourceHashing);
        let Change::AddService(v6) = &c[12] else {
            panic!()
        };
        assert_eq!(
            v6.persistence,
            Some(Persistence {
                timeout: 60,
                prefix_len: 64
            })
        );
        let Change::AddDestination(k, gue) = &c[14] else {
            panic!()
        };
        assert_eq!(*k, key("10.0.0.1:80"));
        assert_eq!(
            gue.forward,
            ForwardMethod::Tunnel {
                tunnel: TunnelType::Gue { port: 6080 },
                flags: TunnelFlags::CSUM
            }
        );
        let Change::AddDestination(_, ipip) = &c[17] else {
            panic!()
        };
        assert_eq!((ipip.weight, ipip.port), (0, 80));
    }

    #[test]
    fn names_comments_and_other_commands() {
        let input = "\
# saved by ipvsadm -S
ipvsadm -A -t 10.0.0.1:www -s rr   # port by name

-a -t 10.0.0.1:80 -r 10.0.0.2:http -m -w 1 -x 100 -y 10
-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3
-E -t 10.0.0.1:80 -s wrr
-d -t 10.0.0.1:80 -r 10.0.0.2:80
-D -t 10.0.0.1:80
-C
--set 900 120 300
-Z
add-service -t 10.0.0.9:80
";
        let steps = parse(input.as_bytes(), &KernelModules::default()).unwrap();
        assert_eq!(steps.len(), 5);
        let Step::Changes(first) = &steps[0] else {
            panic!()
        };
        assert_eq!(first.len(), 6);
        assert_eq!(first[0].0, 2);
        let mut d = Destination::new(
            "10.0.0.2".parse().unwrap(),
            80,
            ForwardMethod::Masquerade,
            1,
        );
        d.upper_threshold = 100;
        d.lower_threshold = 10;
        assert_eq!(first[1], (4, Change::AddDestination(key("10.0.0.1:80"), d)));
        assert_eq!(
            first[4].1,
            Change::DeleteDestination {
                service: key("10.0.0.1:80"),
                addr: "10.0.0.2".parse().unwrap(),
                port: 80
            }
        );
        assert_eq!(steps[1], Step::Flush(Some(9)));
        assert_eq!(
            steps[2],
            Step::SetTimeouts(
                10,
                Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300
                }
            )
        );
        assert_eq!(steps[3], Step::Zero(11, None));
        let Step::Changes(last) = &steps[4] else {
            panic!()
        };
        assert_eq!(
            last[0],
            (
                12,
                Change::AddService(Service::new(
                    key("10.0.0.9:80"),
                    Scheduler::WeightedLeastConnection
                ))
            )
        );
    }

    /// `input` with each character below 256 as one byte, so that tests can
    /// write bytes that are not UTF-8.
    fn latin1(input: &str) -> Vec<u8> {
        input.chars().map(|c| c as u8).collect()
    }

    #[test]
    fn bytes_comments_long_lines_and_kernel_modules() {
        // Any bytes in a comment; the line number of a bad byte elsewhere.
        let input = latin1("# r\u{e9}sum\u{e9} \u{ff}\n-A -t 10.0.0.1:80 -s rr # \u{fe}\n");
        assert_eq!(parse(&input, &KernelModules::default()).unwrap().len(), 1);
        let err = parse(
            &latin1("\n-A -t 10.0.0.1:80 -s \u{ff}rr\n"),
            &KernelModules::default(),
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("0xff at column 22"), "{err}");
        // A huge bad line is quoted in part.
        let huge = format!("-A -t 10.0.0.1:80 -s rr {}\n", "x".repeat(1_000_000));
        let err = parse(huge.as_bytes(), &KernelModules::default()).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
        assert!(err.text.ends_with("... (1000024 bytes)"), "{}", err.text);
        // Schedulers and engines the kernel lacks are refused before anything.
        let modules = KernelModules::from_lists(&["ip_vs_rr.ko:\nip_vs_pe_sip.ko:\n"]);
        let rules = "-A -t 10.0.0.1:80 -s rr\n-A -u 10.0.0.1:5060 -s rr -p --pe sip\n";
        assert!(parse(rules.as_bytes(), &modules).is_ok());
        for (input, needle) in [
            (
                "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s rrr\n",
                "unknown scheduler `rrr'",
            ),
            ("-A -t 10.0.0.1:80\n", "ip_vs_wlc"),
            (
                "-E -t 10.0.0.1:80 -s rr -p --pe sipp\n",
                "persistence engine `sipp'",
            ),
        ] {
            let err = parse(input.as_bytes(), &modules).unwrap_err();
            assert!(err.message.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn the_first_bad_line_is_reported_with_its_number() {
        let cases = [
            ("-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s\n", 2, "-s"),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2 (null) -w 1\n",
                2,
                "(null)",
            ),
            ("-A -t 300.0.0.1:80\n", 1, "illegal virtual server"),
            ("\n\n-A -t 10.0.0.1\n", 3, "Zero port"),
            ("-A -t 10.0.0.1:80 -s rr -x\n", 1, "-x"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1\n", 1, "-1"),
            (
                "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -g\n",
                1,
                "address family",
            ),
            ("-L -n\n", 1, "not a table command"),
            ("-A -t 10.0.0.1:80 -L\n", 1, "multiple commands"),
            ("-t 10.0.0.1:80\n", 1, "no command"),
            ("--set 1 2\n", 1, "--set"),
            ("--set 1 2 x\n", 1, "timeout"),
            ("-A -f 0 -s rr\n", 1, "fwmark"),
            ("-A -t 10.0.0.1:80 -M 255.255.0.255 -p\n", 1, "mask"),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type vxlan\n",
                1,
                "vxlan",
            ),
            ("-A -t 10.0.0.1:80 extra\n", 1, "extra"),
            ("-A -t 10.0.0.1:80 -M 255.0.255.0\n", 1, "mask"),
            ("-A -t [2001:db8::1]:80 -M 129\n", 1, "netmask"),
            ("# \u{ff}\n-A -t 10.0.0.1:80 -s r\u{e9}r\n", 2, "not UTF-8"),
        ];
        for (input, line, needle) in cases {
            let err = parse(&latin1(input), &KernelModules::default()).unwrap_err();
            assert_eq!(err.line, line, "{input:?}: {err}");
            assert!(err.to_string().contains(needle), "{input:?}: {err}");
        }
    }
}

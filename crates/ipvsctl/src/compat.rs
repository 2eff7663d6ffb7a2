//! ipvsadm's command-line grammar, mapped onto the subcommands.
//!
//! ipvsadm takes one command option anywhere (`-L`, `-A`, `--set`, ...),
//! bundles short options (`-Ln`, `-Lnc`, `-Sn`), and lets a short option
//! carry its value (`-t10.0.0.1:80`). clap cannot express that directly, so
//! the arguments are rewritten: the command option becomes a subcommand in
//! front, bundles are split, and everything else keeps its name, which the
//! subcommands share with ipvsadm. `-Lc` becomes `conns`, `-L --timeout`
//! `timeouts`, `--set A B C` `timeouts --set A B C`. Listings and saves
//! without `-n` get `--resolve`: ipvsadm prints names unless `-n`.

use crate::spec::UsageError;

/// Short options that take a value (`-p`'s is optional).
const WITH_VALUE: &str = "tufsMrwxyb";

/// A command option and the subcommand it becomes.
const COMMANDS: &[(char, &str, &str)] = &[
    ('A', "add-service", "add-service"),
    ('E', "edit-service", "edit-service"),
    ('D', "delete-service", "delete-service"),
    ('C', "clear", "flush"),
    ('L', "list", "list"),
    ('l', "list", "list"),
    ('Z', "zero", "zero"),
    ('a', "add-server", "add-server"),
    ('e', "edit-server", "edit-server"),
    ('d', "delete-server", "delete-server"),
    ('R', "restore", "restore"),
    ('S', "save", "save"),
];

/// Whether arguments are in ipvsadm's form (they start with an option)
/// rather than a subcommand's.
pub(crate) fn is_ipvsadm_form(args: &[String]) -> bool {
    args.first().is_some_and(|a| a.starts_with('-'))
}

/// One recognised token.
enum Token {
    /// A command option: the subcommand it maps to.
    Command(&'static str),
    /// Anything else, passed on.
    Other(String),
}

/// Rewrites ipvsadm-form arguments (without the program name) into
/// subcommand form.
///
/// # Errors
/// Two commands, none, or a command this tool does not have (the sync
/// daemon).
pub(crate) fn rewrite(args: &[String]) -> Result<Vec<String>, UsageError> {
    let tokens = tokenize(args)?;
    let mut command = None;
    let mut rest = Vec::new();
    for t in tokens {
        match t {
            Token::Command(c) if command.is_some() => {
                return Err(UsageError(format!("multiple commands specified ({c})")));
            }
            Token::Command(c) => command = Some(c),
            Token::Other(o) => rest.push(o),
        }
    }
    let command = command.ok_or_else(|| {
        UsageError("no command given (one of -A -E -D -C -L -Z -a -e -d -R -S --set)".into())
    })?;
    let is = |opts: &[&str], a: &String| opts.contains(&a.as_str());
    let (command, rest) = match command {
        "--help" | "--version" => (command, rest),
        "list" if rest.iter().any(|a| is(&["-c", "--connection"], a)) => (
            "conns",
            rest.into_iter()
                .filter(|a| !is(&["-c", "--connection"], a))
                .collect(),
        ),
        "list" if rest.iter().any(|a| is(&["--timeout"], a)) => (
            "timeouts",
            rest.into_iter()
                .filter(|a| !is(&["--timeout", "-n", "--numeric"], a))
                .collect(),
        ),
        "list" if rest.iter().any(|a| is(&["--daemon"], a)) => {
            return Err(UsageError(
                "the sync daemon is not supported (--daemon)".into(),
            ));
        }
        "timeouts" => (
            "timeouts",
            std::iter::once("--set".to_owned()).chain(rest).collect(),
        ),
        other => (other, rest),
    };
    // ipvsadm names addresses and ports unless -n; subcommands do not.
    let resolve = matches!(command, "list" | "conns" | "save")
        && !rest.iter().any(|a| is(&["-n", "--numeric"], a));
    let resolve = resolve.then(|| "--resolve".to_owned());
    Ok(std::iter::once(command.to_owned())
        .chain(resolve)
        .chain(rest)
        .collect())
}

fn tokenize(args: &[String]) -> Result<Vec<Token>, UsageError> {
    let mut out = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.extend(args.by_ref().cloned().map(Token::Other));
        } else if let Some(long) = arg.strip_prefix("--") {
            out.push(long_option(long, arg)?);
        } else if let Some(bundle) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            short_bundle(bundle, &mut out);
        } else {
            out.push(Token::Other(arg.clone()));
        }
    }
    Ok(out)
}

fn long_option(long: &str, arg: &str) -> Result<Token, UsageError> {
    Ok(match long {
        "help" => Token::Command("--help"),
        "version" => Token::Command("--version"),
        "set" => Token::Command("timeouts"),
        "start-daemon" | "stop-daemon" => {
            return Err(UsageError(format!(
                "the sync daemon is not supported (--{long})"
            )));
        }
        _ => COMMANDS
            .iter()
            .find(|(_, name, _)| *name == long)
            .map_or_else(
                || Token::Other(arg.to_owned()),
                |(_, _, sub)| Token::Command(sub),
            ),
    })
}

/// Splits `-Lnt10.0.0.1:80` into `-L`, `-n`, `-t`, `10.0.0.1:80`.
fn short_bundle(bundle: &str, out: &mut Vec<Token>) {
    for (i, c) in bundle.char_indices() {
        if let Some((_, _, sub)) = COMMANDS.iter().find(|(letter, ..)| *letter == c) {
            out.push(Token::Command(sub));
            continue;
        }
        match c {
            'h' => out.push(Token::Command("--help")),
            'v' => out.push(Token::Command("--version")),
            _ => out.push(Token::Other(format!("-{c}"))),
        }
        if WITH_VALUE.contains(c) || c == 'p' {
            let value = &bundle[i + c.len_utf8()..];
            if !value.is_empty() {
                out.push(Token::Other(value.to_owned()));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(line: &str) -> Result<String, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        rewrite(&args).map(|v| v.join(" "))
    }

    #[test]
    fn commands_become_subcommands() {
        assert_eq!(rw("-Ln").unwrap(), "list -n");
        assert_eq!(
            rw("-L -n --stats --exact").unwrap(),
            "list -n --stats --exact"
        );
        assert_eq!(rw("-l").unwrap(), "list --resolve");
        assert_eq!(rw("-L --stats").unwrap(), "list --resolve --stats");
        assert_eq!(rw("-S").unwrap(), "save --resolve");
        assert_eq!(rw("-Lc").unwrap(), "conns --resolve");
        assert_eq!(rw("--list --numeric").unwrap(), "list --numeric");
        assert_eq!(rw("-Sn").unwrap(), "save -n");
        assert_eq!(rw("-R").unwrap(), "restore");
        assert_eq!(rw("-C").unwrap(), "flush");
        assert_eq!(rw("--clear").unwrap(), "flush");
        assert_eq!(rw("-Z -t 10.0.0.1:80").unwrap(), "zero -t 10.0.0.1:80");
        assert_eq!(
            rw("-A -t 10.0.0.1:80 -s rr -p 300").unwrap(),
            "add-service -t 10.0.0.1:80 -s rr -p 300"
        );
        assert_eq!(
            rw("-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 2").unwrap(),
            "add-server -t 10.0.0.1:80 -r 10.0.0.2 -m -w 2"
        );
        assert_eq!(
            rw("-d -f 1 -r 10.0.0.2").unwrap(),
            "delete-server -f 1 -r 10.0.0.2"
        );
        assert_eq!(
            rw("-E -f 1 -6 -s sh").unwrap(),
            "edit-service -f 1 -6 -s sh"
        );
        assert_eq!(
            rw("-e -u 1.2.3.4:53 -r 5.6.7.8").unwrap(),
            "edit-server -u 1.2.3.4:53 -r 5.6.7.8"
        );
        assert_eq!(
            rw("-D --sctp-service 1.2.3.4:9").unwrap(),
            "delete-service --sctp-service 1.2.3.4:9"
        );
    }

    #[test]
    fn bundles_and_attached_values_are_split() {
        assert_eq!(rw("-At10.0.0.1:80").unwrap(), "add-service -t 10.0.0.1:80");
        assert_eq!(rw("-Lnt 10.0.0.1:80").unwrap(), "list -n -t 10.0.0.1:80");
        assert_eq!(
            rw("-A -t 10.0.0.1:0 -p3600").unwrap(),
            "add-service -t 10.0.0.1:0 -p 3600"
        );
        assert_eq!(rw("-A -f 5 -6p").unwrap(), "add-service -f 5 -6 -p");
    }

    #[test]
    fn list_variants_map_to_their_subcommands() {
        assert_eq!(rw("-Lnc").unwrap(), "conns -n");
        assert_eq!(
            rw("-L -n -c --persistent-conn").unwrap(),
            "conns -n --persistent-conn"
        );
        assert_eq!(rw("-L --timeout").unwrap(), "timeouts");
        assert_eq!(rw("-Ln --timeout").unwrap(), "timeouts");
        assert_eq!(
            rw("--set 900 120 300").unwrap(),
            "timeouts --set 900 120 300"
        );
        assert_eq!(
            rw("-Ln --names /etc/cluster").unwrap(),
            "list -n --names /etc/cluster"
        );
        assert_eq!(
            rw("-Lnc --names cluster").unwrap(),
            "conns -n --names cluster"
        );
        assert_eq!(rw("-h").unwrap(), "--help");
        assert_eq!(rw("--version").unwrap(), "--version");
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(rw("-n").is_err());
        assert!(rw("-L -S").is_err());
        assert!(rw("-LA").is_err());
        assert!(rw("-L --daemon").is_err());
        assert!(rw("--start-daemon master").is_err());
    }

    #[test]
    fn form_detection() {
        let v = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert!(is_ipvsadm_form(&v("-Ln")));
        assert!(!is_ipvsadm_form(&v("list --stats")));
        assert!(!is_ipvsadm_form(&[]));
    }
}

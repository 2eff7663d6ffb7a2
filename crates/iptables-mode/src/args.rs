//! Building one rule word by word, in the order kube-proxy writes its arguments.

use iptables::{ChainName, Rule};
use model::Protocol;

/// The words of a rule under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Args(Vec<String>);

impl Args {
    /// No words yet.
    pub(crate) fn new() -> Args {
        Args(Vec::with_capacity(16))
    }

    /// Appends words.
    pub(crate) fn words<S: AsRef<str>>(mut self, words: &[S]) -> Args {
        self.0.extend(words.iter().map(|w| w.as_ref().to_owned()));
        self
    }

    /// Appends the words of a match written as text (`! -s 10.0.0.0/8`), if any.
    pub(crate) fn matches(mut self, text: Option<&str>) -> Args {
        self.0.extend(
            text.into_iter()
                .flat_map(str::split_whitespace)
                .map(str::to_owned),
        );
        self
    }

    /// `-m comment --comment TEXT`.
    pub(crate) fn comment(self, text: &str) -> Args {
        self.words(&["-m", "comment", "--comment", text])
    }

    /// `-m comment --comment TEXT` unless `omit` (kube-proxy's large-cluster mode).
    pub(crate) fn comment_unless(self, omit: bool, text: &str) -> Args {
        if omit { self } else { self.comment(text) }
    }

    /// `-m PROTO -p PROTO`.
    pub(crate) fn protocol(self, protocol: Protocol) -> Args {
        let p = protocol.as_str();
        self.words(&["-m", p, "-p", p])
    }

    /// Ends the rule with `-j TARGET`.
    pub(crate) fn jump(self, target: &str) -> Result<Rule, iptables::Error> {
        self.words(&["-j", target]).rule()
    }

    /// Ends the rule with `-j CHAIN`.
    pub(crate) fn jump_to(self, chain: &ChainName) -> Result<Rule, iptables::Error> {
        self.jump(chain.as_str())
    }

    /// The rule as it is, without a target.
    pub(crate) fn rule(self) -> Result<Rule, iptables::Error> {
        Rule::from_args(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_like_kube_proxy() {
        let rule = Args::new()
            .comment("ns1/svc1:p80 cluster IP")
            .protocol(Protocol::Tcp)
            .words(&["-d", "172.30.0.41", "--dport", "80"])
            .matches(Some("! -s 10.0.0.0/8"))
            .jump("KUBE-MARK-MASQ")
            .unwrap();
        assert_eq!(
            rule.text(),
            r#"-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ"#
        );
        let bare = Args::new()
            .comment_unless(true, "x")
            .jump("ACCEPT")
            .unwrap();
        assert_eq!(bare.text(), "-j ACCEPT");
        assert!(Args::new().comment("a\nb").rule().is_err());
    }
}

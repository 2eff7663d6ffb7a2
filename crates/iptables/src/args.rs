//! Building one rule word by word, in the order the rule's generator writes its arguments:
//! the one way both proxy modes make a [`Rule`], whose text is then the one spelling
//! ([`Rule::from_args`]) that the writer, the dry runs and the tests print.

use crate::{ChainName, Error, Rule};

/// The words of a rule under construction.
///
/// ```
/// use iptables::Args;
/// let rule = Args::new()
///     .comment("kubernetes forwarding rules")
///     .set_match("KUBE-CLUSTER-IP", "dst,dst")
///     .jump("ACCEPT")
///     .unwrap();
/// assert_eq!(
///     rule.text(),
///     r#"-m comment --comment "kubernetes forwarding rules" -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT"#
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<String>);

impl Args {
    /// No words yet.
    pub fn new() -> Args {
        Args(Vec::with_capacity(16))
    }

    /// Appends words.
    #[must_use]
    pub fn words<S: AsRef<str>>(mut self, words: &[S]) -> Args {
        self.0.extend(words.iter().map(|w| w.as_ref().to_owned()));
        self
    }

    /// `-m comment --comment TEXT`.
    #[must_use]
    pub fn comment(self, text: &str) -> Args {
        self.words(&["-m", "comment", "--comment", text])
    }

    /// `-m comment --comment TEXT` unless `omit` (kube-proxy's large-cluster mode).
    #[must_use]
    pub fn comment_unless(self, omit: bool, text: &str) -> Args {
        if omit { self } else { self.comment(text) }
    }

    /// `-m PROTO -p PROTO`, as kube-proxy's iptables mode writes a protocol (`tcp`, `udp`,
    /// `sctp`).
    #[must_use]
    pub fn protocol(self, protocol: &str) -> Args {
        self.words(&["-m", protocol, "-p", protocol])
    }

    /// `-m set --match-set SET FLAGS` (`dst,dst`, `dst,dst,src`, ...).
    #[must_use]
    pub fn set_match(self, set: &str, flags: &str) -> Args {
        self.words(&["-m", "set", "--match-set", set, flags])
    }

    /// Ends the rule with `-j TARGET`.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a word with a line break.
    pub fn jump(self, target: &str) -> Result<Rule, Error> {
        self.words(&["-j", target]).rule()
    }

    /// Ends the rule with `-j CHAIN`.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a word with a line break.
    pub fn jump_to(self, chain: &ChainName) -> Result<Rule, Error> {
        self.jump(chain.as_str())
    }

    /// The rule as it is, without a target.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a word with a line break.
    pub fn rule(self) -> Result<Rule, Error> {
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
            .protocol("tcp")
            .words(&["-d", "172.30.0.41", "--dport", "80"])
            .words(&["!", "-s", "10.0.0.0/8"])
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

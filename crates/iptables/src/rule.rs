//! One rule's specification (everything after `-A CHAIN`), compared by its
//! words so that quoting differences do not count as changes.

use std::fmt;

use crate::Error;

/// A rule specification as `iptables-restore` reads it after `-A CHAIN`, for
/// example `-m comment --comment "default/web:http cluster IP" -j KUBE-SVC-X`.
///
/// Two rules are equal when they split into the same words, the way
/// `iptables-restore` splits them (double quotes group, a backslash escapes
/// the next character), so `--comment "a"` equals `--comment a`.
///
/// Generators should emit rules the way `iptables-save` prints them (`-m tcp`
/// after `-p tcp --dport`, `--set-xmark 0x4000/0x4000` for `--or-mark`, `! -s`
/// before `-m`...). [`crate::Iptables`] copes with other spellings by learning
/// how the kernel printed what it wrote, but canonical rules cost nothing.
///
/// ```
/// use iptables::Rule;
/// let a = Rule::parse(r#"-m comment --comment "default/web:http" -j KUBE-SVC-X"#).unwrap();
/// let b = Rule::from_args(["-m", "comment", "--comment", "default/web:http", "-j", "KUBE-SVC-X"]).unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.target(), Some("KUBE-SVC-X"));
/// assert!(Rule::parse("-j ACCEPT\n-F INPUT").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    words: Vec<String>,
}

impl Rule {
    /// Parses a rule specification written in `iptables-restore` syntax.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a line break or an unterminated quote. An
    /// empty rule is valid: it matches everything and only counts packets.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let invalid = |why: &'static str| Error::InvalidRule {
            rule: text.to_owned(),
            why,
        };
        if text.contains(['\n', '\r']) {
            return Err(invalid("contains a line break"));
        }
        let words = split_words(text).ok_or_else(|| invalid("unterminated quote"))?;
        Ok(Rule {
            text: text.to_owned(),
            words,
        })
    }

    /// Builds a rule from its words, quoting those that need it.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a word with a line break.
    pub fn from_args<I, S>(args: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let words: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let text = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        // The words are kept as given: quoting makes `text` split back into them.
        if text.contains(['\n', '\r']) {
            return Err(Error::InvalidRule {
                rule: text,
                why: "contains a line break",
            });
        }
        Ok(Rule { text, words })
    }

    /// The rule as written, ready for `-A CHAIN <text>`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The rule's words, unquoted.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The rule's target: the word after `-j`/`--jump` or `-g`/`--goto`.
    pub fn target(&self) -> Option<&str> {
        self.words
            .windows(2)
            .find(|w| matches!(w[0].as_str(), "-j" | "--jump" | "-g" | "--goto"))
            .map(|w| w[1].as_str())
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.words == other.words
    }
}

impl Eq for Rule {}

impl std::hash::Hash for Rule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words.hash(state);
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits like xtables' `add_param_to_argv`: whitespace separates words,
/// double quotes group, a backslash makes the next character literal.
/// `None` when a quote is left open.
pub(crate) fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut in_word, mut quoted) = (false, false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.push(chars.next().unwrap_or('\\'));
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// The characters `iptables-save` escapes with a backslash inside double quotes
/// (libxtables' `xtables_save_string`).
const ESCAPED: [char; 3] = ['"', '\\', '\''];

/// Quotes a word in double quotes when it has whitespace or one of [`ESCAPED`], or is
/// empty, escaping [`ESCAPED`] as `iptables-save` does; `iptables-restore` reads it back as
/// the same word.
fn quote(word: &str) -> String {
    if !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || ESCAPED.contains(&c)) {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        if ESCAPED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quotes_and_escapes() {
        let w = split_words(r#"-m comment --comment "a \"b\" c" -j X"#).unwrap();
        assert_eq!(w, ["-m", "comment", "--comment", "a \"b\" c", "-j", "X"]);
        assert_eq!(split_words(r#"--comment """#).unwrap(), ["--comment", ""]);
        assert_eq!(split_words(r#"--comment "open"#), None);
    }

    #[test]
    fn quoting_round_trips() {
        for word in ["plain", "two words", "q\"uote", "back\\slash", "it's", ""] {
            let rule = Rule::from_args(["--comment", word]).unwrap();
            assert_eq!(rule.words()[1], word, "{}", rule.text());
        }
        assert_eq!(
            Rule::from_args(["-j", "ACCEPT"]).unwrap().text(),
            "-j ACCEPT"
        );
        // As iptables-save prints kube-proxy's SCTP NodePort comment.
        assert_eq!(
            Rule::from_args(["--comment", "type 'hash ip:port'"])
                .unwrap()
                .text(),
            r#"--comment "type \'hash ip:port\'""#
        );
    }

    #[test]
    fn equality_ignores_quoting_not_order() {
        let quoted = Rule::parse(r#"--comment "x" -j A"#).unwrap();
        assert_eq!(quoted, Rule::parse("--comment x   -j A").unwrap());
        assert_ne!(quoted, Rule::parse("-j A --comment x").unwrap());
    }

    #[test]
    fn targets_and_invalid_rules() {
        assert_eq!(Rule::parse("-g KUBE-X").unwrap().target(), Some("KUBE-X"));
        assert_eq!(Rule::parse("-s 1.2.3.4").unwrap().target(), None);
        assert!(Rule::parse("   ").unwrap().words().is_empty());
        assert!(
            Rule::parse("-j A\r").is_ok(),
            "trailing whitespace is trimmed"
        );
        assert!(Rule::parse("-j A\r-j B").is_err());
    }
}

//! How the kernel prints what we wrote: `iptables-save` rewrites some rules
//! (`--or-mark 0x4000` comes back as `--set-xmark 0x4000/0x4000`, `-p tcp
//! --dport 80` gains `-m tcp`), so comparing desired rules with saved ones
//! would see a change on every sync. After each apply the writer reads the
//! table back and remembers, per chain and per jump, what the saved form of
//! our desired rules is. A chain whose saved rules match neither the desired
//! rules nor their remembered saved form has drifted and is rewritten.

use std::collections::HashMap;

use crate::{ChainName, Rule};

/// Saved forms of desired rules, learned after applying them, for one table.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    chains: HashMap<ChainName, (Vec<Rule>, Vec<Rule>)>,
    jumps: HashMap<(ChainName, Rule), Rule>,
}

impl Learned {
    /// True when `saved` is what `desired` looks like once applied: equal,
    /// or equal to the saved form learned for exactly these desired rules.
    pub fn chain_matches(&self, name: &ChainName, desired: &[Rule], saved: &[Rule]) -> bool {
        desired == saved
            || self
                .chains
                .get(name)
                .is_some_and(|(d, s)| d == desired && s == saved)
    }

    /// True when the saved rule `saved` in `from` is the desired jump `desired`.
    pub fn jump_matches(&self, from: &ChainName, desired: &Rule, saved: &Rule) -> bool {
        desired == saved
            || self
                .jumps
                .get(&(from.clone(), desired.clone()))
                .is_some_and(|s| s == saved)
    }

    /// Records that the chain `name`, written as `desired`, reads back as
    /// `saved`. Nothing is kept when they are already equal.
    pub fn learn_chain(&mut self, name: &ChainName, desired: &[Rule], saved: &[Rule]) {
        if desired == saved {
            self.chains.remove(name);
        } else {
            self.chains
                .insert(name.clone(), (desired.to_vec(), saved.to_vec()));
        }
    }

    /// Records that the jump `desired` in `from` reads back as `saved`.
    pub fn learn_jump(&mut self, from: &ChainName, desired: &Rule, saved: &Rule) {
        let key = (from.clone(), desired.clone());
        if desired == saved {
            self.jumps.remove(&key);
        } else {
            self.jumps.insert(key, saved.clone());
        }
    }

    /// Forgets chains for which `keep` is false (chains no longer desired).
    pub fn retain_chains(&mut self, keep: impl Fn(&ChainName) -> bool) {
        self.chains.retain(|name, _| keep(name));
    }

    /// How many chains have a saved form different from their desired form.
    pub fn rewritten_chains(&self) -> usize {
        self.chains.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Vec<Rule> {
        texts.iter().map(|t| Rule::parse(t).unwrap()).collect()
    }

    #[test]
    fn matches_the_learned_saved_form_only_for_the_same_desired_rules() {
        let name: ChainName = "KUBE-MARK-MASQ".parse().unwrap();
        let desired = rules(&["-j MARK --or-mark 0x4000"]);
        let saved = rules(&["-j MARK --set-xmark 0x4000/0x4000"]);
        let mut learned = Learned::default();
        assert!(!learned.chain_matches(&name, &desired, &saved));
        learned.learn_chain(&name, &desired, &saved);
        assert!(learned.chain_matches(&name, &desired, &saved));
        let other = rules(&["-j MARK --or-mark 0x8000"]);
        assert!(
            !learned.chain_matches(&name, &other, &saved),
            "desired changed"
        );
        assert!(!learned.chain_matches(&name, &desired, &[]), "drifted");
        learned.retain_chains(|_| false);
        assert_eq!(learned.rewritten_chains(), 0);
    }

    #[test]
    fn learns_jumps() {
        let from: ChainName = "INPUT".parse().unwrap();
        let desired = Rule::parse("-p tcp --dport 80 -j KUBE-X").unwrap();
        let saved = Rule::parse("-p tcp -m tcp --dport 80 -j KUBE-X").unwrap();
        let mut learned = Learned::default();
        assert!(!learned.jump_matches(&from, &desired, &saved));
        learned.learn_jump(&from, &desired, &saved);
        assert!(learned.jump_matches(&from, &desired, &saved));
        learned.learn_jump(&from, &desired, &desired);
        assert!(!learned.jump_matches(&from, &desired, &saved));
    }
}

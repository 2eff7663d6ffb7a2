//! Who gets an address (protocol, address, port) that two Services claim, in both proxy
//! modes. The API server accepts a Service whose `externalIPs` or load balancer IP equals
//! another Service's ClusterIP (CVE-2020-8554): such a declared address must never take
//! over an address the API server allocated. So an allocated claim (a ClusterIP, a
//! NodePort) beats a declared one (an external or load balancer IP); among claims of one
//! origin the older Service wins ([`Seniority`]: creationTimestamp, then uid; by
//! namespace/name only when neither is known). kube-proxy has no rule here: it programs
//! the Services in map order, so either may win.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use model::{Consequence, Invalid, Kind, ObjectId, Seniority, Service, Warning};

use crate::ipvs::VsKey;

/// How a Service came to hold an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Allocated by the API server: a ClusterIP, or a node address with a NodePort.
    Allocated,
    /// Declared by whoever wrote the Service: one of its `externalIPs`.
    ExternalIp,
    /// Declared by whoever wrote the Service or its load balancer's controller: a load
    /// balancer ingress IP.
    LoadBalancerIp,
}

impl Origin {
    /// The origin of `key` for `svc`: declared when its address is one of the Service's
    /// external or load balancer IPs (and not its ClusterIP), allocated otherwise.
    pub fn of(svc: &Service, key: &VsKey) -> Origin {
        if svc.cluster_ips.contains(&key.addr) {
            Origin::Allocated
        } else if svc.external_ips.contains(&key.addr) {
            Origin::ExternalIp
        } else if svc.load_balancer_ips.contains(&key.addr) {
            Origin::LoadBalancerIp
        } else {
            Origin::Allocated
        }
    }

    /// Whether the address was declared rather than allocated: what the contest looks at.
    pub fn declared(self) -> bool {
        self != Origin::Allocated
    }

    /// The Service's field the address comes from.
    pub fn field(self) -> &'static str {
        match self {
            Origin::Allocated => "spec.clusterIP",
            Origin::ExternalIp => "spec.externalIPs",
            Origin::LoadBalancerIp => "status.loadBalancer.ingress",
        }
    }
}

/// One Service's claim on one address. Ordered as the contest goes: the smallest wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Allocated before declared.
    pub origin: Origin,
    /// Older before younger.
    pub seniority: Seniority,
    /// The claimant; by name only as the last resort.
    pub service: ObjectId,
}

impl Ord for Claim {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.origin.declared(), &self.seniority, &self.service).cmp(&(
            other.origin.declared(),
            &other.seniority,
            &other.service,
        ))
    }
}

impl PartialOrd for Claim {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The addresses a Service claims in either proxy mode: each of its ClusterIPs, external
/// IPs and load balancer IPs with each of its ports.
pub fn keys(svc: &Service) -> impl Iterator<Item = VsKey> + '_ {
    let addrs = (svc.cluster_ips.iter())
        .chain(&svc.external_ips)
        .chain(&svc.load_balancer_ips);
    addrs.flat_map(|addr| {
        svc.ports.iter().map(|p| VsKey {
            protocol: p.protocol,
            addr: *addr,
            port: p.port,
        })
    })
}

/// Every claim on every address, kept up to date one Service at a time.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The claims on each address, the winner first.
    by_key: BTreeMap<VsKey, Vec<Claim>>,
    /// The addresses each Service claims.
    by_service: HashMap<ObjectId, Vec<VsKey>>,
}

/// An address claimed more than once: who has it and who does not.
#[derive(Debug, Clone, Copy)]
pub struct Conflict<'a> {
    /// The address.
    pub key: &'a VsKey,
    /// The claim that wins.
    pub winner: &'a Claim,
    /// The claims that lose.
    pub losers: &'a [Claim],
}

impl Claims {
    /// Makes `svc`'s claims `keys` (none: the Service is gone), replacing those it had.
    /// Returns the other Services that won or lost an address by it.
    pub fn set(
        &mut self,
        id: &ObjectId,
        svc: Option<&Service>,
        keys: impl IntoIterator<Item = VsKey>,
    ) -> BTreeSet<ObjectId> {
        let old = self.by_service.remove(id).unwrap_or_default();
        let new: Vec<VsKey> = match svc {
            Some(_) => keys.into_iter().collect(),
            None => Vec::new(),
        };
        let mut touched = BTreeSet::new();
        let mut affected = BTreeSet::new();
        for key in old.iter().chain(&new) {
            if touched.insert(*key)
                && let Some(first) = self.winner(key)
            {
                affected.insert(first.clone());
            }
        }
        for key in &old {
            if let Some(claims) = self.by_key.get_mut(key) {
                claims.retain(|c| c.service != *id);
                if claims.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        if let Some(svc) = svc {
            for key in &new {
                let claim = Claim {
                    origin: Origin::of(svc, key),
                    seniority: svc.seniority.clone(),
                    service: id.clone(),
                };
                let claims = self.by_key.entry(*key).or_default();
                let at = claims.binary_search(&claim).unwrap_or_else(|at| at);
                // Room for this claim only: almost every address has one claimant, and a
                // vector grown by `insert` keeps room for four.
                claims.reserve_exact(1);
                claims.insert(at, claim);
            }
            if !new.is_empty() {
                self.by_service.insert(id.clone(), new);
            }
        }
        for key in &touched {
            if let Some(first) = self.winner(key) {
                affected.insert(first.clone());
            }
        }
        affected.remove(id);
        affected
    }

    /// The Service that has `key`.
    pub fn winner(&self, key: &VsKey) -> Option<&ObjectId> {
        Some(&self.by_key.get(key)?.first()?.service)
    }

    /// Whether `id` has `key` (false when it does not claim it).
    pub fn wins(&self, id: &ObjectId, key: &VsKey) -> bool {
        self.winner(key) == Some(id)
    }

    /// Every address claimed, with its winner, in ipvsadm's order.
    pub fn winners(&self) -> impl Iterator<Item = (&VsKey, &ObjectId)> {
        (self.by_key.iter()).filter_map(|(key, claims)| Some((key, &claims.first()?.service)))
    }

    /// The addresses claimed more than once.
    pub fn conflicts(&self) -> impl Iterator<Item = Conflict<'_>> {
        self.by_key.iter().filter_map(|(key, claims)| {
            let (winner, losers) = claims.split_first()?;
            (!losers.is_empty()).then_some(Conflict {
                key,
                winner,
                losers,
            })
        })
    }
}

impl Conflict<'_> {
    /// The note for a loser: which address it does not get, who has it instead, and why.
    pub fn note(&self, loser: &Claim) -> String {
        let why = if self.winner.origin.declared() == loser.origin.declared() {
            "it is older"
        } else {
            "an allocated address beats a declared one"
        };
        format!(
            "{} is not proxied for this Service: {} has it as its {} ({why})",
            self.key,
            self.winner.service,
            self.winner.origin.field()
        )
    }

    /// A warning naming each loser, the field its claim comes from and who has the address.
    pub fn warnings(&self) -> impl Iterator<Item = Warning> + '_ {
        self.losers.iter().map(|loser| Warning {
            kind: Kind::Service,
            object: loser.service.clone(),
            problem: Invalid::new(loser.origin.field(), self.note(loser)),
            consequence: Consequence::AddressLost,
        })
    }
}

/// The warnings about the conflicts in `claims` that involve a Service of `changed`: each
/// conflict is reported when one of its Services changes, not at every sync.
pub fn warnings(claims: &Claims, changed: &BTreeSet<ObjectId>) -> Vec<Warning> {
    claims
        .conflicts()
        .filter(|c| {
            changed.contains(&c.winner.service)
                || c.losers.iter().any(|l| changed.contains(&l.service))
        })
        .flat_map(|c| c.warnings().collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Protocol;

    /// A Service `ns/name` with this ClusterIP and external IP, created at `created`.
    fn svc(
        ns: &str,
        name: &str,
        cluster_ip: &str,
        external: &str,
        created: Option<&str>,
        uid: &str,
    ) -> Service {
        let raw = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "uid": uid},
            "spec": {"clusterIP": cluster_ip, "externalIPs": [external],
                     "ports": [{"port": 53, "protocol": "UDP"}]},
        }))
        .expect("service");
        Service::from_kubernetes(&raw, &mut Vec::new())
            .expect("valid")
            .expect("proxied")
    }

    fn key(addr: &str) -> VsKey {
        VsKey {
            protocol: Protocol::Udp,
            addr: addr.parse().expect("address"),
            port: 53,
        }
    }

    /// The winner of each contested address after claiming in this order.
    fn contest(services: &[&Service]) -> BTreeMap<String, String> {
        let mut claims = Claims::default();
        for s in services {
            claims.set(&s.id, Some(s), keys(s));
        }
        claims
            .conflicts()
            .map(|c| (c.key.addr.to_string(), c.winner.service.to_string()))
            .collect()
    }

    #[test]
    fn who_wins_an_address_claimed_twice() {
        let t1 = Some("2020-01-01T00:00:00Z");
        let t2 = Some("2021-01-01T00:00:00Z");
        let dns = svc(
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            "192.0.2.9",
            t2,
            "u-9",
        );
        // (case, intruder, expected winner of the contested address)
        let cases = [
            // A younger intruder, sorting first by name, declares kube-dns's ClusterIP.
            (
                "younger intruder",
                svc("aa", "x", "10.96.0.20", "10.96.0.10", t2, "u-1"),
                ("10.96.0.10", "kube-system/kube-dns"),
            ),
            // Even an older one does not get an allocated address.
            (
                "older intruder",
                svc("aa", "x", "10.96.0.20", "10.96.0.10", t1, "u-1"),
                ("10.96.0.10", "kube-system/kube-dns"),
            ),
            // Two declared addresses: the older Service, whatever its name.
            (
                "older declared",
                svc("zz", "y", "10.96.0.21", "192.0.2.9", t1, "u-2"),
                ("192.0.2.9", "zz/y"),
            ),
            (
                "younger declared",
                svc(
                    "aa",
                    "y",
                    "10.96.0.21",
                    "192.0.2.9",
                    Some("2022-01-01T00:00:00Z"),
                    "u-2",
                ),
                ("192.0.2.9", "kube-system/kube-dns"),
            ),
            // Same time: the smaller uid.
            (
                "same time, smaller uid",
                svc("zz", "y", "10.96.0.21", "192.0.2.9", t2, "u-0"),
                ("192.0.2.9", "zz/y"),
            ),
            // No time at all (a directory of manifests) comes after a known time.
            (
                "no time",
                svc("aa", "y", "10.96.0.21", "192.0.2.9", None, ""),
                ("192.0.2.9", "kube-system/kube-dns"),
            ),
        ];
        for (case, other, (addr, winner)) in &cases {
            let expected = BTreeMap::from([(addr.to_string(), winner.to_string())]);
            assert_eq!(contest(&[&dns, other]), expected, "{case}");
            assert_eq!(contest(&[other, &dns]), expected, "{case}, other order");
        }
    }

    #[test]
    fn a_change_names_the_services_that_won_or_lost() {
        let dns = svc(
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            "192.0.2.9",
            None,
            "",
        );
        let intruder = svc("aa", "x", "10.96.0.20", "10.96.0.10", None, "");
        let mut claims = Claims::default();
        assert!(
            claims
                .set(&intruder.id, Some(&intruder), keys(&intruder))
                .is_empty()
        );
        // kube-dns takes its address from the intruder, who is told.
        assert_eq!(
            claims.set(&dns.id, Some(&dns), keys(&dns)),
            BTreeSet::from([intruder.id.clone()])
        );
        let warnings = warnings(&claims, &BTreeSet::from([dns.id.clone()]));
        assert_eq!(
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "Service aa/x: spec.externalIPs: udp 10.96.0.10:53 is not proxied for this \
              Service: kube-system/kube-dns has it as its spec.clusterIP (an allocated \
              address beats a declared one) (address left to the other Service)"
            ]
        );
        assert!(super::warnings(&claims, &BTreeSet::new()).is_empty());
        // kube-dns goes: the intruder has the address again.
        assert_eq!(
            claims.set(&dns.id, None, []),
            BTreeSet::from([intruder.id.clone()])
        );
        assert!(claims.wins(&intruder.id, &key("10.96.0.10")));
        assert_eq!(claims.conflicts().count(), 0);
    }
}

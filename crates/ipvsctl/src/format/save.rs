//! `ipvsadm -Sn`, byte for byte: the rules that `ipvsadm -R` (and
//! `ipvsctl-rs restore`) read back.
//!
//! As in ipvsadm, thresholds are not saved, local real servers are saved
//! as `-g`, and a cache-bypass real server (which ipvsadm cannot create)
//! is saved with ipvsadm's `(null)` switch, which restore refuses.

use ipvs::ServiceRules;
use ipvs::spelling::{name_protocol, service_options, service_switch, write_destination_options};

use crate::naming::Naming;

/// The rules for a table already in the wanted order, with addresses and
/// ports written as `naming` says (`-S` names them, `-Sn` does not).
pub(crate) fn render(table: &[ServiceRules], naming: &Naming) -> String {
    // About 60 bytes a line, written without reallocating.
    let lines: usize = table.iter().map(|s| 1 + s.destinations.len()).sum();
    let mut out = String::with_capacity(lines * 64);
    for s in table {
        let svc = &s.service;
        out.push_str("-A ");
        out.push_str(&service_options(svc, naming));
        out.push('\n');
        // Written once for all of the service's real servers.
        let switch = service_switch(&svc.key, naming);
        let protocol = name_protocol(&svc.key);
        for d in &s.destinations {
            out.push_str("-a ");
            write_destination_options(&mut out, &switch, protocol, d, naming);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use ipvs::spelling::destination_options;
    use ipvs::{DestinationRule, ForwardMethod, ServiceKey};

    #[test]
    fn save_matches_ipvsadm() {
        assert_eq!(render(&testdata::rules(), &Naming::Numeric), testdata::SAVE);
    }

    #[test]
    fn local_and_bypass_real_servers() {
        let key = ServiceKey::inet(ipvs::Protocol::Tcp, "10.0.0.1".parse().unwrap(), 80);
        let rule = |forward| {
            let d = ipvs::Destination::new("127.0.0.1".parse().unwrap(), 80, forward, 1);
            let switch = service_switch(&key, &Naming::Numeric);
            let protocol = name_protocol(&key);
            let options = destination_options(
                &switch,
                protocol,
                &DestinationRule::from(&d),
                &Naming::Numeric,
            );
            format!("-a {options}")
        };
        assert_eq!(
            rule(ForwardMethod::Local),
            "-a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1"
        );
        assert_eq!(
            rule(ForwardMethod::Bypass),
            "-a -t 10.0.0.1:80 -r 127.0.0.1:80 (null) -w 1"
        );
    }
}

//! Which virtual services a listing shows.

use std::net::IpAddr;

use ipvs::{Scheduler, ServiceKey, ServiceWithDestinations};

use crate::cli::Filters;
use crate::spec::UsageError;

/// A protocol to select: one of the transport protocols, or fwmark services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProtocolSel {
    Inet(ipvs::Protocol),
    Fwmark,
}

/// The conditions a service must meet; all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Exactly this service (`-t`, `-u`, `--sctp-service`, `-f`).
    pub(crate) service: Option<ServiceKey>,
    protocol: Option<ProtocolSel>,
    address: Option<IpAddr>,
    port: Option<u16>,
    scheduler: Option<Scheduler>,
}

impl Filter {
    /// The filter of the command-line options.
    pub(crate) fn new(f: &Filters) -> Result<Self, UsageError> {
        let protocol = match f.protocol.as_deref() {
            None => None,
            Some(p) if p.eq_ignore_ascii_case("fwm") || p.eq_ignore_ascii_case("fwmark") => {
                Some(ProtocolSel::Fwmark)
            }
            Some(p) => Some(ProtocolSel::Inet(p.parse().map_err(
                |e: ipvs::UnknownProtocol| UsageError(format!("{e} or fwm")),
            )?)),
        };
        Ok(Filter {
            service: f.service.key()?,
            protocol,
            address: f.address,
            port: f.port,
            scheduler: f
                .scheduler
                .as_deref()
                .map(|s| s.parse().unwrap_or_else(|e| match e {})),
        })
    }

    /// Whether a service passes.
    pub(crate) fn matches(&self, s: &ServiceWithDestinations) -> bool {
        let svc = &s.service.service;
        let (protocol, addr, port) = match svc.key {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => (ProtocolSel::Inet(protocol), Some(addr), Some(port)),
            ServiceKey::Fwmark { .. } => (ProtocolSel::Fwmark, None, None),
        };
        self.service.is_none_or(|k| k == svc.key)
            && self.protocol.is_none_or(|p| p == protocol)
            && self.address.is_none_or(|a| Some(a) == addr)
            && self.port.is_none_or(|p| Some(p) == port)
            && self.scheduler.as_ref().is_none_or(|s| *s == svc.scheduler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn count(f: Filters) -> usize {
        let filter = Filter::new(&f).unwrap();
        testdata::table()
            .iter()
            .filter(|s| filter.matches(s))
            .count()
    }

    #[test]
    fn filters_select_services() {
        let all = testdata::table().len();
        assert_eq!(count(Filters::default()), all);
        let fwm = count(Filters {
            protocol: Some("fwm".into()),
            ..Default::default()
        });
        let tcp = count(Filters {
            protocol: Some("TCP".into()),
            ..Default::default()
        });
        assert!(fwm > 0 && tcp > 0 && fwm + tcp < all);
        let rr = count(Filters {
            scheduler: Some("rr".into()),
            ..Default::default()
        });
        assert!(rr > 0 && rr < all);
        let mut one = Filters::default();
        one.service.tcp = Some(testdata::FIRST_TCP.into());
        assert_eq!(count(one), 1);
        assert!(
            Filter::new(&Filters {
                protocol: Some("icmp".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}

//! From command-line options to the IPVS client's types, with ipvsadm's
//! rules: default scheduler `wlc`, weight 1, direct routing; a port-zero
//! service must be persistent; one-packet scheduling only for UDP and
//! fwmark services; a real server's port is the service's for direct
//! routing and tunnels; families may differ only when tunnelling.

use std::net::IpAddr;

use ipvs::{
    AddressFamily, Destination, ForwardMethod, Persistence, Protocol, Scheduler, Service,
    ServiceFlags, ServiceKey, TunnelFlags, TunnelType,
};

use crate::cli::{Forwarding, ServerArgs, ServerKey, ServiceArgs, TunType, VirtualService};
use crate::values::{self, MAX_TIMEOUT};

/// A command line that ipvsadm would refuse (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

impl From<String> for UsageError {
    fn from(s: String) -> Self {
        UsageError(s)
    }
}

/// The protocol whose port names apply to a service's addresses
/// (TCP for fwmark services, as in ipvsadm).
fn name_protocol(key: &ServiceKey) -> Protocol {
    match key {
        ServiceKey::Inet { protocol, .. } => *protocol,
        ServiceKey::Fwmark { .. } => Protocol::Tcp,
    }
}

impl VirtualService {
    /// The service named, if any.
    pub(crate) fn key(&self) -> Result<Option<ServiceKey>, UsageError> {
        let inet = |s: &str, protocol| -> Result<ServiceKey, UsageError> {
            let ap = values::addr_port(s, protocol)
                .map_err(|e| UsageError(format!("illegal virtual server: {e}")))?;
            Ok(ServiceKey::inet(protocol, ap.addr, ap.port.unwrap_or(0)))
        };
        Ok(Some(
            match (&self.tcp, &self.udp, &self.sctp, &self.fwmark) {
                (Some(s), ..) => inet(s, Protocol::Tcp)?,
                (_, Some(s), ..) => inet(s, Protocol::Udp)?,
                (_, _, Some(s), _) => inet(s, Protocol::Sctp)?,
                (.., Some(mark)) => {
                    let af = if self.ipv6 {
                        AddressFamily::Inet6
                    } else {
                        AddressFamily::Inet
                    };
                    ServiceKey::Fwmark {
                        af,
                        mark: values::fwmark(mark)?,
                    }
                }
                (None, None, None, None) => return Ok(None),
            },
        ))
    }

    /// The service named, which the command needs.
    pub(crate) fn required_key(&self, command: &str) -> Result<ServiceKey, UsageError> {
        self.key()?.ok_or_else(|| {
            UsageError(format!(
                "You need to supply the 'service-address' option for the '{command}' command"
            ))
        })
    }
}

impl ServiceArgs {
    /// The service to create or edit.
    pub(crate) fn to_service(&self, command: &str) -> Result<Service, UsageError> {
        let key = self.service.required_key(command)?;
        let scheduler: Scheduler = self.scheduler.parse().unwrap_or_else(|e| match e {});
        let mut svc = Service::new(key, scheduler);
        // ipvsadm checks -M with or without -p; without -p the kernel keeps
        // it unused, so it is checked and dropped.
        let prefix_len = match (&self.netmask, key.af()) {
            (None, af) => af.max_prefix_len(),
            (Some(m), AddressFamily::Inet) => values::ipv4_netmask(m)?,
            (Some(m), AddressFamily::Inet6) => values::ipv6_prefix(m)?,
        };
        if let Some(timeout) = &self.persistent {
            let timeout = values::number(timeout, 1, MAX_TIMEOUT, "persistent timeout")?;
            svc.persistence = Some(Persistence {
                timeout,
                prefix_len,
            });
        }
        if let ServiceKey::Inet { port: 0, .. } = key
            && svc.persistence.is_none()
        {
            return Err(UsageError(
                "Zero port specified for non-persistent service".into(),
            ));
        }
        svc.persistence_engine = self.pe.clone();
        if self.ops {
            if let ServiceKey::Inet { protocol, .. } = key
                && protocol != Protocol::Udp
            {
                return Err(UsageError(
                    "One-Packet Scheduling is only for UDP virtual services".into(),
                ));
            }
            svc.flags |= ServiceFlags::ONE_PACKET;
        }
        if let Some(flags) = &self.sched_flags {
            svc.flags |= values::sched_flags(&svc.scheduler, flags)?;
        }
        Ok(svc)
    }
}

impl ServerKey {
    /// The service and the real server's address and port.
    pub(crate) fn resolve(
        &self,
        command: &str,
        forward: Option<&ForwardMethod>,
    ) -> Result<(ServiceKey, IpAddr, u16), UsageError> {
        let key = self.service.required_key(command)?;
        let rs = self.real_server.as_deref().ok_or_else(|| {
            UsageError(format!(
                "You need to supply the 'real-server' option for the '{command}' command"
            ))
        })?;
        let ap = values::addr_port(rs, name_protocol(&key))
            .map_err(|e| UsageError(format!("illegal real server: {e}")))?;
        let service_port = match key {
            ServiceKey::Inet { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        };
        // ipvsadm forces the service's port for direct routing and tunnels.
        let forced = matches!(key, ServiceKey::Inet { .. })
            && matches!(
                forward,
                Some(ForwardMethod::DirectRoute | ForwardMethod::Tunnel { .. })
            );
        let port = if forced {
            service_port
        } else {
            ap.port.unwrap_or(service_port)
        };
        Ok((key, ap.addr, port))
    }
}

impl ServerArgs {
    /// The service and the real server to add or edit.
    pub(crate) fn to_destination(
        &self,
        command: &str,
    ) -> Result<(ServiceKey, Destination), UsageError> {
        let forward = self.forward()?;
        let (key, addr, port) = self.key.resolve(command, Some(&forward))?;
        if AddressFamily::of(&addr) != key.af() && !matches!(forward, ForwardMethod::Tunnel { .. })
        {
            return Err(UsageError(
                "Different address family is allowed only for tunneling servers".into(),
            ));
        }
        let weight = values::number(&self.weight, 0, 65535, "weight")?;
        let mut d = Destination::new(addr, port, forward, weight);
        let max = i32::MAX as u32;
        d.upper_threshold = values::number(&self.u_threshold, 0, max, "u_threshold")?;
        d.lower_threshold = values::number(&self.l_threshold, 0, max, "l_threshold")?;
        Ok((key, d))
    }

    fn forward(&self) -> Result<ForwardMethod, UsageError> {
        let Forwarding {
            ipip, masquerading, ..
        } = self.forwarding;
        let c = &self.checksum;
        let tunnel_options =
            self.tun_type.is_some() || self.tun_port.is_some() || c.nocsum || c.csum || c.remcsum;
        if !ipip {
            if tunnel_options {
                return Err(UsageError(
                    "Tunnel options conflict with forward method".into(),
                ));
            }
            return Ok(if masquerading {
                ForwardMethod::Masquerade
            } else {
                ForwardMethod::DirectRoute
            });
        }
        let illegal = |opt: &str, ty: &str| {
            UsageError(format!(
                "Illegal '{opt}' option with the '{ty}' tunnel type"
            ))
        };
        let flags = if c.csum {
            TunnelFlags::CSUM
        } else if c.remcsum {
            TunnelFlags::REMCSUM
        } else {
            TunnelFlags::empty()
        };
        let tunnel = match self.tun_type.unwrap_or(TunType::Ipip) {
            TunType::Ipip => {
                if self.tun_port.is_some() {
                    return Err(illegal("tun-port", "ipip"));
                }
                if c.nocsum || c.csum || c.remcsum {
                    return Err(illegal("tun-*csum", "ipip"));
                }
                TunnelType::Ipip
            }
            TunType::Gue => {
                let port = self.tun_port.as_deref().ok_or_else(|| {
                    UsageError(
                        "You need to supply the 'tun-port' option for the 'gue' tunnel type".into(),
                    )
                })?;
                TunnelType::Gue {
                    port: values::number(port, 1, 65535, "tunnel port")? as u16,
                }
            }
            TunType::Gre => {
                if self.tun_port.is_some() {
                    return Err(illegal("tun-port", "gre"));
                }
                if c.remcsum {
                    return Err(illegal("tun-remcsum", "gre"));
                }
                TunnelType::Gre
            }
        };
        Ok(ForwardMethod::Tunnel { tunnel, flags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    /// Parses a subcommand line split on blanks.
    fn cli(line: &str) -> Command {
        let argv = std::iter::once("ipvsctl-rs").chain(line.split_whitespace());
        Cli::try_parse_from(argv).unwrap().command.unwrap()
    }

    fn service(line: &str) -> Result<Service, UsageError> {
        match cli(&format!("add-service {line}")) {
            Command::AddService(a) => a.to_service("add-service"),
            other => panic!("{other:?}"),
        }
    }

    fn server(line: &str) -> Result<(ServiceKey, Destination), UsageError> {
        match cli(&format!("add-server {line}")) {
            Command::AddServer(a) => a.to_destination("add-server"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn service_defaults_are_ipvsadm_s() {
        let svc = service("-t 10.0.0.1:80").unwrap();
        assert_eq!(svc.scheduler, Scheduler::WeightedLeastConnection);
        assert_eq!(svc.persistence, None);
        let p = service("-u 10.0.0.1:53 -p -M 255.255.0.0").unwrap();
        let expected = Persistence {
            timeout: 360,
            prefix_len: 16,
        };
        assert_eq!(p.persistence, Some(expected));
        let v6 = service("-f 3 -6 -p 60 -M 64").unwrap();
        assert_eq!(v6.persistence.map(|p| p.prefix_len), Some(64));
        assert_eq!(v6.key.af(), AddressFamily::Inet6);
    }

    #[test]
    fn service_rules_are_enforced() {
        assert!(service("-t 10.0.0.1").is_err());
        assert!(service("-t 10.0.0.1 -p").is_ok());
        assert!(service("-t 10.0.0.1:80 -o").is_err());
        assert!(service("-u 10.0.0.1:80 -o").is_ok());
        assert!(service("-f 9 -o").is_ok());
        assert!(service("-t 10.0.0.1:80 -b sh-port").is_err());
        assert!(service("-t 10.0.0.1:80 -p 0").is_err());
        assert!(service("-s rr").is_err());
    }

    #[test]
    fn real_server_ports_follow_ipvsadm() {
        let (_, d) = server("-t 10.0.0.1:80 -r 10.0.0.2:8080 -m").unwrap();
        let nat = (8080, ForwardMethod::Masquerade, 1);
        assert_eq!((d.port, d.forward, d.weight), nat);
        let (_, d) = server("-t 10.0.0.1:80 -r 10.0.0.2:8080").unwrap();
        assert_eq!((d.port, d.forward), (80, ForwardMethod::DirectRoute));
        let (_, d) = server("-t 10.0.0.1:80 -r 10.0.0.2 -m").unwrap();
        assert_eq!(d.port, 80);
        let (_, d) = server("-f 1 -r 10.0.0.2:99 -g").unwrap();
        assert_eq!(d.port, 99);
    }

    #[test]
    fn tunnels_and_families() {
        let line =
            "-t 10.0.0.1:80 -r [2001:db8::5]:80 -i --tun-type gue --tun-port 6080 --tun-csum";
        let (_, d) = server(line).unwrap();
        let gue = ForwardMethod::Tunnel {
            tunnel: TunnelType::Gue { port: 6080 },
            flags: TunnelFlags::CSUM,
        };
        assert_eq!(d.forward, gue);
        for bad in [
            "-t 10.0.0.1:80 -r [2001:db8::5]:80 -m",
            "-t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type gre",
            "-t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue",
            "-t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 1",
            "-t 10.0.0.1:80 -r 10.0.0.2 -i --tun-csum",
            "-t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum",
            "-t 10.0.0.1:80 -r 10.0.0.2 -w 65536",
            "-t 10.0.0.1:80",
        ] {
            assert!(server(bad).is_err(), "{bad}");
        }
    }
}

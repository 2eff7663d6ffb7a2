//! Changes to the IPVS table, the unit of [`Client::apply`](crate::Client::apply).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::addr::AddrPort;
use crate::destination::Destination;
use crate::error::{Object, Operation};
use crate::message::{CmdAttr, Command, IpvsMessage};
use crate::service::{Service, ServiceKey};

/// One change to the IPVS table.
///
/// # Examples
/// ```
/// use ipvs::{Change, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceKey};
/// let key = ServiceKey::inet(Protocol::Tcp, "10.96.0.1".parse().unwrap(), 443);
/// let changes = vec![
///     Change::AddService(Service::new(key, Scheduler::RoundRobin)),
///     Change::AddDestination(key, Destination::new("10.0.0.5".parse().unwrap(), 6443, ForwardMethod::Masquerade, 1)),
/// ];
/// assert_eq!(changes[1].to_string(), "add destination TCP 10.96.0.1:443 -> 10.0.0.5:6443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// Create a service (`ipvsadm -A`).
    AddService(Service),
    /// Change a service's scheduler, flags, persistence (`ipvsadm -E`).
    EditService(Service),
    /// Delete a service and its destinations (`ipvsadm -D`).
    DeleteService(ServiceKey),
    /// Add a real server to a service (`ipvsadm -a`).
    AddDestination(ServiceKey, Destination),
    /// Change a real server's forwarding, weight, thresholds (`ipvsadm -e`).
    EditDestination(ServiceKey, Destination),
    /// Remove a real server from a service (`ipvsadm -d`).
    DeleteDestination {
        /// The service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
}

impl Change {
    /// The operation, for errors.
    pub fn operation(&self) -> Operation {
        match self {
            Change::AddService(_) => Operation::AddService,
            Change::EditService(_) => Operation::EditService,
            Change::DeleteService(_) => Operation::DeleteService,
            Change::AddDestination(..) => Operation::AddDestination,
            Change::EditDestination(..) => Operation::EditDestination,
            Change::DeleteDestination { .. } => Operation::DeleteDestination,
        }
    }

    /// The object, for errors: `TCP 10.0.0.1:80` or `TCP 10.0.0.1:80 -> 10.244.1.5:8080`.
    pub fn object(&self) -> Object {
        Object(match self {
            Change::AddService(s) | Change::EditService(s) => s.key.to_string(),
            Change::DeleteService(k) => k.to_string(),
            Change::AddDestination(k, d) | Change::EditDestination(k, d) => format!("{k} -> {d}"),
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => {
                format!("{service} -> {}", AddrPort(addr, *port))
            }
        })
    }

    /// The request, or why it cannot be sent.
    pub(crate) fn to_message(&self) -> Result<IpvsMessage, String> {
        let service = |s: &Service| -> Result<CmdAttr, String> {
            s.validate()?;
            Ok(CmdAttr::Service(s.to_attrs()))
        };
        Ok(match self {
            Change::AddService(s) => IpvsMessage::new(Command::NewService, vec![service(s)?]),
            Change::EditService(s) => IpvsMessage::new(Command::SetService, vec![service(s)?]),
            Change::DeleteService(k) => {
                IpvsMessage::new(Command::DelService, vec![CmdAttr::Service(k.to_attrs())])
            }
            Change::AddDestination(k, d) => IpvsMessage::new(
                Command::NewDest,
                vec![CmdAttr::Service(k.to_attrs()), CmdAttr::Dest(d.to_attrs())],
            ),
            Change::EditDestination(k, d) => IpvsMessage::new(
                Command::SetDest,
                vec![CmdAttr::Service(k.to_attrs()), CmdAttr::Dest(d.to_attrs())],
            ),
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => IpvsMessage::new(
                Command::DelDest,
                vec![
                    CmdAttr::Service(service.to_attrs()),
                    CmdAttr::Dest(Destination::key_attrs(*addr, *port)),
                ],
            ),
        })
    }
}

/// `add service TCP 10.0.0.1:80`.
impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.operation(), self.object())
    }
}

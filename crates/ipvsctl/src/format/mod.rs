//! Text renderings of the table that ipvsadm users and scripts know:
//! `ipvsadm -Ln` and its variants ([`list`]), `ipvsadm -Sn` ([`save`]).
//! Pure functions of the table (and of the names looked up for it, see
//! [`crate::naming`]): no socket. How a rule's options are spelled is
//! [`ipvs::spelling`]'s, shared with the daemon's pre-flight.

pub(crate) mod column;
pub(crate) mod list;
pub(crate) mod save;

//! Pipelined application of many changes over the shared socket's batch
//! ([`netlink::Socket::batch`]: many requests per `sendmsg`, each answer
//! matched to its change by sequence number).

use crate::change::Change;
use crate::error::Error;
use crate::message;
use crate::socket::Transport;

/// Applies `changes` in order; one result per change.
///
/// The kernel handles the requests of one `sendmsg` one after the other
/// before the call returns: a failing request fails alone. If answers are
/// lost anyway (`ENOBUFS`), the affected changes report [`Error::AckLost`].
pub(crate) fn apply(t: &mut Transport, changes: &[Change]) -> Vec<Result<(), Error>> {
    let family = t.family();
    let mut invalid: Vec<(usize, String)> = Vec::new();
    let results = t
        .socket()
        .batch(changes.len(), |i, tx| match changes[i].to_message() {
            Ok(msg) => {
                message::encode(tx, family, msg);
                true
            }
            Err(reason) => {
                invalid.push((i, reason));
                false
            }
        });
    let mut invalid = invalid.into_iter().peekable();
    results
        .into_iter()
        .zip(changes)
        .enumerate()
        .map(|(i, (result, change))| {
            result.map_err(|failure| {
                let (op, object) = (change.operation(), change.object());
                match failure {
                    netlink::Failure::Refused(nack) => Error::kernel(op, object, nack),
                    netlink::Failure::Lost => Error::AckLost { op, object },
                    netlink::Failure::Socket(e) => Error::Io {
                        op,
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    },
                    _ => Error::InvalidInput {
                        op,
                        object,
                        reason: invalid
                            .next_if(|(at, _)| *at == i)
                            .map(|(_, reason)| reason)
                            .unwrap_or_else(|| "not sent".to_owned()),
                    },
                }
            })
        })
        .collect()
}

//! The rtnetlink connection every other module here talks through.

use crate::dummy::LinkError;

/// Opens an rtnetlink socket and runs its connection on the current tokio
/// runtime; the handle returned sends requests over it.
///
/// # Errors
/// [`LinkError::Socket`] when the socket cannot be opened.
///
/// # Panics
/// Outside a tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, LinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Socket)?;
    tokio::spawn(connection);
    Ok(handle)
}

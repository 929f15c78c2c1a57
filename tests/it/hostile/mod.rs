//! Hostile input and security checks against a real server on a port: broken and oversized
//! bodies, header and token tampering, other visitors' ids, every protected route without a
//! token (from a list of every route), slow clients, idle and half-sent connections, the
//! limits on names, pages, sockets, bodies and logins, and secrets kept out of debug logs.

mod idle;
mod limits;
pub(crate) mod routes;
mod requests;
mod secrets;

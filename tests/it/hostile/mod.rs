//! Hostile input and security checks against a real server on a port: broken and oversized
//! bodies, header and token tampering, other visitors' ids, every protected route without a
//! token (from a list of every route), slow clients, and secrets kept out of debug logs.

mod routes;
mod requests;
mod secrets;

//! Hostile input and security checks against a real server on a port: broken and oversized
//! bodies, header and token tampering, other visitors' ids, every protected route without a
//! token (from a list of every route), slow clients, and secrets kept out of debug logs.

#[path = "service/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "hostile/routes.rs"]
mod routes;
#[path = "hostile/requests.rs"]
mod requests;
#[path = "hostile/secrets.rs"]
mod secrets;

//! Rate limits: per client IP on every request, per conversation on visitor messages, a cap
//! on requests in flight, and failed agent logins per account and per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

pub struct Limiters {
    pub logins: Logins,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: super::client::TrustedProxies,
    ip: DefaultKeyedRateLimiter<IpAddr>,
    /// WebSockets open per conversation.
    sockets: Arc<Mutex<HashMap<String, usize>>>,
    conversation: DefaultKeyedRateLimiter<String>,
    in_flight: Arc<Semaphore>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).expect("at least 1");
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"))
}

impl Limiters {
    pub fn new(l: &Limits) -> Limiters {
        Limiters {
            logins: Logins::new(l),
            proxies: Default::default(),
            sockets: Default::default(),
            ip: RateLimiter::keyed(quota(l.ip_per_second, l.ip_burst)),
            conversation: RateLimiter::keyed(quota(l.conversation_per_second, l.conversation_burst)),
            in_flight: Arc::new(Semaphore::new(l.max_in_flight)),
        }
    }

    /// The same limits, believing `X-Forwarded-For` from these proxies.
    pub fn with_proxies(mut self, trusted_proxies: &[String]) -> Limiters {
        self.proxies = super::client::TrustedProxies::new(trusted_proxies);
        self
    }

    /// Ok, or the seconds to wait (for Retry-After).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.ip.check_key(&ip).map_err(|n| n.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
    }

    pub fn check_conversation(&self, id: &str) -> Result<(), u64> {
        self.conversation.check_key(&id.to_string()).map_err(|n| n.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
    }

    /// A slot for one request, or None when `max_in_flight` are already being served. Never
    /// waits: under overload a quick 503 lets clients back off, a queue would only grow.
    pub fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// A place for one more WebSocket on a conversation, or None when it has `max` open.
    pub fn enter_socket(&self, conversation: &str, max: usize) -> Option<SocketSlot> {
        let mut map = self.sockets.lock().expect("sockets lock poisoned");
        let n = map.entry(conversation.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot { conversation: conversation.to_string(), sockets: self.sockets.clone() })
    }

    /// Forgets keys whose limits have fully recovered, so memory stays bounded.
    pub fn shrink(&self) {
        self.logins.shrink();
        self.ip.retain_recent();
        self.conversation.retain_recent();
        self.ip.shrink_to_fit();
        self.conversation.shrink_to_fit();
    }
}

/// One open WebSocket of a conversation; dropping it frees the place.
pub struct SocketSlot {
    conversation: String,
    sockets: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut map = self.sockets.lock().expect("sockets lock poisoned");
        if let Some(n) = map.get_mut(&self.conversation) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.conversation);
            }
        }
    }
}

/// Failed agent logins, per account and per client address: past the limit, logins are
/// refused (429) until the lockout ends or, for an account, an admin unlocks it. Failures
/// older than the lockout are forgotten. In memory: a restart forgets them. With several
/// nodes on one store an account's failures are also counted in the store, on every node
/// (`Service::count_shared_failure`); an address's stay per node.
pub struct Logins {
    per_address: u32,
    per_account: u32,
    lockout: Duration,
    inner: Mutex<HashMap<LoginKey, Failures>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LoginKey {
    Address(IpAddr),
    Account(String),
}

struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Why a login is refused before its password is checked, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    Account(Duration),
    Address(Duration),
}

impl Logins {
    pub fn new(l: &Limits) -> Logins {
        Logins {
            per_address: l.login_failures_per_address,
            per_account: l.login_failures_per_account,
            lockout: Duration::from_secs(l.login_lockout_secs),
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn account_key(account: &str) -> LoginKey {
        // Ids are at most 64 characters; longer ones share a key rather than grow the map.
        LoginKey::Account(account.chars().take(64).collect())
    }

    /// Whether a login to `account` from `ip` may be tried now.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), Locked> {
        let now = Instant::now();
        let inner = self.inner.lock().expect("logins lock poisoned");
        let left = |key: &LoginKey| inner.get(key).and_then(|f| f.locked_until).and_then(|t| t.checked_duration_since(now));
        if let Some(d) = left(&LoginKey::Address(ip)) {
            return Err(Locked::Address(d));
        }
        if let Some(d) = left(&Self::account_key(account)) {
            return Err(Locked::Account(d));
        }
        Ok(())
    }

    /// Counts a wrong password (or unknown account) for both keys.
    pub fn failed(&self, ip: IpAddr, account: &str) {
        self.count(&[(LoginKey::Address(ip), self.per_address), (Self::account_key(account), self.per_account)]);
    }

    /// Counts a wrong password for the address only: the account's failures are counted in
    /// the store that several nodes share (an unlock on any node then lifts them).
    pub fn failed_from(&self, ip: IpAddr) {
        self.count(&[(LoginKey::Address(ip), self.per_address)]);
    }

    fn count(&self, keys: &[(LoginKey, u32)]) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("logins lock poisoned");
        for (key, limit) in keys.iter().cloned() {
            let f = inner.entry(key).or_insert(Failures { count: 0, first: now, locked_until: None });
            if now.duration_since(f.first) > self.lockout || f.locked_until.is_some_and(|t| t <= now) {
                *f = Failures { count: 0, first: now, locked_until: None };
            }
            f.count += 1;
            if f.count >= limit {
                f.locked_until = Some(now + self.lockout);
            }
        }
    }

    /// A right password: the account's failures are forgotten (the address's are not, or
    /// one valid account would launder guesses at others).
    pub fn succeeded(&self, account: &str) {
        self.inner.lock().expect("logins lock poisoned").remove(&Self::account_key(account));
    }

    /// Lifts an account's lockout; whether it was locked.
    pub fn unlock(&self, account: &str) -> bool {
        let now = Instant::now();
        let removed = self.inner.lock().expect("logins lock poisoned").remove(&Self::account_key(account));
        removed.is_some_and(|f| f.locked_until.is_some_and(|t| t > now))
    }

    /// Forgets failures older than the lockout.
    pub fn shrink(&self) {
        let now = Instant::now();
        let lockout = self.lockout;
        self.inner.lock().expect("logins lock poisoned").retain(|_, f| {
            f.locked_until.is_some_and(|t| t > now) || now.duration_since(f.first) <= lockout
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { login_failures_per_account: 3, login_failures_per_address: 5, login_lockout_secs: 60, ..Limits::default() }
    }

    #[test]
    fn an_account_locks_after_its_failures_and_an_admin_unlocks_it() {
        let l = Logins::new(&limits());
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..2 {
            l.failed(a, "wang");
        }
        assert!(l.check(a, "wang").is_ok());
        l.failed(b, "wang");
        let Err(Locked::Account(d)) = l.check(a, "wang") else { panic!("the account is locked from every address") };
        assert!(d > Duration::from_secs(50) && d <= Duration::from_secs(60), "{d:?}");
        assert!(l.check(a, "li").is_ok(), "other accounts are not locked");
        assert!(l.unlock("wang"));
        assert!(l.check(a, "wang").is_ok());
        assert!(!l.unlock("wang"), "nothing left to unlock");
    }

    #[test]
    fn an_address_locks_after_failures_on_any_accounts() {
        let l = Logins::new(&limits());
        let a = IpAddr::from([10, 0, 0, 1]);
        for i in 0..5 {
            l.failed(a, &format!("guess{i}"));
        }
        assert!(matches!(l.check(a, "someone-new"), Err(Locked::Address(_))));
        assert!(l.check(IpAddr::from([10, 0, 0, 2]), "someone-new").is_ok());
        l.succeeded("guess1");
        assert!(matches!(l.check(a, "guess1"), Err(Locked::Address(_))), "a success elsewhere does not clear the address");
    }
}

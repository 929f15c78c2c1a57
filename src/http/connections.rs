//! Open connections, counted per client address and in all, so that idle sockets cannot use
//! up the server's file descriptors: an address over `limits.connections_per_address` is
//! refused at accept, and at `max` connections an idle one (no complete request yet) of the
//! address holding the most connections makes room for the newcomer, so a probe of
//! `/healthz` is accepted, and kept, while a few addresses' idle sockets can be let go.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address already holds `connections_per_address`.
    PerAddress,
    /// `max` connections are open and every one is serving a request.
    Full,
}

/// Connections that may be over the cap while evicted ones close.
const LEAVING: usize = 16;

pub struct Connections {
    per_address: usize,
    max: usize,
    /// Addresses exempt from the per-address limit (trusted reverse proxies carry many
    /// clients' connections).
    exempt: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Connections that have not completed a request yet, by address, oldest first, each
    /// with the bell that tells it to close.
    waiting: HashMap<IpAddr, BTreeMap<u64, Arc<Notify>>>,
}

impl Inner {
    /// Tells one idle connection to go: the oldest of the address that holds the most
    /// connections, so that a flood from a few addresses gives up its own sockets and not a
    /// health check's. False when no connection is idle, or when the newcomer's address holds
    /// as many as any (then the newcomer is refused).
    fn evict(&mut self, newcomer: IpAddr) -> bool {
        let by_address = &self.by_address;
        let held = |ip: &IpAddr| by_address.get(ip).copied().unwrap_or(0);
        let Some(ip) = self.waiting.iter().filter(|(_, w)| !w.is_empty()).max_by_key(|(ip, _)| held(ip)).map(|(ip, _)| *ip) else {
            return false;
        };
        // The newcomer's own address holds as many: it is the one refused, and nothing waits
        // for a descriptor to be freed.
        if held(&newcomer) >= held(&ip) {
            return false;
        }
        let list = self.waiting.get_mut(&ip).expect("the address was just found");
        if let Some((_, bell)) = list.pop_first() {
            bell.notify_one();
        }
        if list.is_empty() {
            self.waiting.remove(&ip);
        }
        true
    }

    fn forget_waiting(&mut self, ip: IpAddr, id: u64) {
        if let Some(list) = self.waiting.get_mut(&ip) {
            list.remove(&id);
            if list.is_empty() {
                self.waiting.remove(&ip);
            }
        }
    }
}

/// One accepted connection; dropping it gives its places back.
pub struct Ticket {
    id: u64,
    ip: IpAddr,
    connections: Arc<Connections>,
    served: AtomicBool,
    /// Rung when the connection is to make room for a newer one.
    pub evicted: Arc<Notify>,
}

/// A connection's place, as a request extension: an upgraded connection (a WebSocket)
/// keeps it for as long as it lives, since hyper's connection task ends at the upgrade.
#[derive(Clone)]
pub struct Held {
    /// Never read: dropping the last one gives the place back.
    _place: Arc<Ticket>,
}

impl Held {
    pub fn new(ticket: Arc<Ticket>) -> Held {
        Held { _place: ticket }
    }
}

impl Connections {
    pub fn new(per_address: usize, max: usize, exempt: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Arc<Connections> {
        Arc::new(Connections { per_address, max: max.max(1), exempt: Box::new(exempt), inner: Mutex::default() })
    }

    /// A place for a connection from `ip`, or why not.
    pub fn accept(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let mut inner = self.inner.lock().expect("connections lock poisoned");
        let here = inner.by_address.get(&ip).copied().unwrap_or(0);
        if here >= self.per_address && !(self.exempt)(ip) {
            return Err(Refused::PerAddress);
        }
        // At the cap an idle socket goes; its descriptor is freed as its task ends, so while
        // a few are still on their way out the newcomer is refused instead (otherwise a burst
        // of connections would run the process out of descriptors before any has gone).
        if inner.open >= self.max && (inner.open >= self.max + LEAVING || !inner.evict(ip)) {
            return Err(Refused::Full);
        }
        inner.next += 1;
        let id = inner.next;
        inner.open += 1;
        *inner.by_address.entry(ip).or_insert(0) += 1;
        let evicted = Arc::new(Notify::new());
        inner.waiting.entry(ip).or_default().insert(id, evicted.clone());
        Ok(Ticket { id, ip, connections: self.clone(), served: AtomicBool::new(false), evicted })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.inner.lock().expect("connections lock poisoned").open
    }
}

impl Ticket {
    /// The connection has sent a complete request: it is no longer the first to go.
    pub fn served(&self) {
        if self.served.swap(true, Ordering::AcqRel) {
            return;
        }
        self.connections.inner.lock().expect("connections lock poisoned").forget_waiting(self.ip, self.id);
    }
}

impl Ticket {
    /// Whether the connection has sent a complete request.
    pub fn is_served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.connections.inner.lock().expect("connections lock poisoned");
        inner.open -= 1;
        inner.forget_waiting(self.ip, self.id);
        if let Some(n) = inner.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.by_address.remove(&self.ip);
            }
        }
    }
}

/// How many connections fit in the process's file-descriptor limit, keeping `reserve` for
/// the store, the index, WebSocket upgrades and outgoing requests.
pub fn descriptor_budget(reserve: usize) -> Option<usize> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        Some((limit.rlim_cur as usize).saturating_sub(reserve).max(16))
    }
    #[cfg(not(unix))]
    {
        let _ = reserve;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_gets_its_share_and_gives_it_back() {
        let c = Connections::new(2, 100, |_| false);
        let a = c.accept(ip(2)).unwrap();
        let _b = c.accept(ip(2)).unwrap();
        assert_eq!(c.accept(ip(2)).err(), Some(Refused::PerAddress));
        assert!(c.accept(ip(3)).is_ok(), "another address is not affected");
        drop(a);
        assert!(c.accept(ip(2)).is_ok(), "a closed connection frees its place");
        let proxies = Connections::new(1, 100, |i| i == ip(9));
        let _p = proxies.accept(ip(9)).unwrap();
        assert!(proxies.accept(ip(9)).is_ok(), "a trusted proxy is exempt");
    }

    #[tokio::test]
    async fn at_the_cap_the_biggest_holders_oldest_idle_connection_makes_room() {
        let c = Connections::new(10, 4, |_| false);
        let probe = c.accept(ip(1)).unwrap();
        let old = c.accept(ip(2)).unwrap();
        let busy = c.accept(ip(2)).unwrap();
        busy.served();
        let _young = c.accept(ip(2)).unwrap();
        let rung = old.evicted.notified();
        let newcomer = c.accept(ip(3)).expect("room is made");
        let wait = std::time::Duration::from_secs(1);
        tokio::time::timeout(wait, rung).await.expect("the biggest holder's oldest idle connection is told to go");
        drop(old);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), probe.evicted.notified()).await.is_err(), "the lone probe stays");
        // At the cap, the biggest holder's newcomer is refused rather than make room.
        assert_eq!(c.accept(ip(2)).err(), Some(Refused::Full));
        drop(newcomer);
        // Served connections are never told to go: with none idle, nothing can come in.
        let full = Connections::new(10, 1, |_| false);
        let only = full.accept(ip(2)).unwrap();
        only.served();
        assert_eq!(full.accept(ip(1)).err(), Some(Refused::Full));
        assert_eq!(c.open(), 3);
    }
}

//! Rate limits: per client IP on every request, per conversation on visitor messages, and a
//! cap on requests in flight.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

pub struct Limiters {
    ip: DefaultKeyedRateLimiter<IpAddr>,
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
            ip: RateLimiter::keyed(quota(l.ip_per_second, l.ip_burst)),
            conversation: RateLimiter::keyed(quota(l.conversation_per_second, l.conversation_burst)),
            in_flight: Arc::new(Semaphore::new(l.max_in_flight)),
        }
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

    /// Forgets keys whose limits have fully recovered, so memory stays bounded.
    pub fn shrink(&self) {
        self.ip.retain_recent();
        self.conversation.retain_recent();
        self.ip.shrink_to_fit();
        self.conversation.shrink_to_fit();
    }
}

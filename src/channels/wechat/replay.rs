//! Replayed push URLs. In plaintext mode WeChat's signature covers only (token, timestamp,
//! nonce), not the body: anyone who saw one signed URL could post another body under it
//! for as long as the timestamp stays in the window. So each (timestamp, nonce) of an app
//! is remembered with a digest of its body until it leaves the window: the same body again
//! is WeChat retrying (answered as a retry), another body is refused. In memory, per
//! process: nodes behind a load balancer each remember their own (safe mode is the remedy).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// What the digest of a body is compared by.
type BodyDigest = [u8; 32];

#[derive(Default)]
pub struct Replays {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<(String, String, String), BodyDigest>,
    /// Keys in the order they were first seen, with their timestamps, for forgetting.
    order: VecDeque<(i64, (String, String, String))>,
}

impl Replays {
    /// Whether `body` may be accepted under this app's `timestamp` and `nonce`: true the first
    /// time and for the same body again; false for a different body. Forgets pairs whose
    /// timestamp is more than `window_secs` before `now_secs`.
    pub fn admit(&self, app: &str, timestamp: i64, nonce: &str, body: &[u8], now_secs: i64, window_secs: u64) -> bool {
        let digest: BodyDigest = Sha256::digest(body).into();
        let mut inner = self.inner.lock().expect("replays lock poisoned");
        while let Some((ts, _)) = inner.order.front() {
            if now_secs.saturating_sub(*ts) <= window_secs as i64 {
                break;
            }
            let (_, key) = inner.order.pop_front().expect("a front entry exists");
            inner.seen.remove(&key);
        }
        let key = (app.to_string(), timestamp.to_string(), nonce.to_string());
        match inner.seen.get(&key) {
            Some(d) => *d == digest,
            None => {
                inner.seen.insert(key.clone(), digest);
                inner.order.push_back((timestamp, key));
                true
            }
        }
    }

    /// Pairs remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().expect("replays lock poisoned").seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_url_takes_one_body_only_within_the_window() {
        let r = Replays::default();
        let now = 1_714_037_059;
        assert!(r.admit("mp", now, "486452656", b"<xml>one</xml>", now, 300));
        assert!(r.admit("mp", now, "486452656", b"<xml>one</xml>", now + 2, 300), "WeChat's retry of the same push");
        assert!(!r.admit("mp", now, "486452656", b"<xml>another</xml>", now + 3, 300), "another body under the same URL");
        assert!(r.admit("mp", now, "1", b"<xml>another</xml>", now + 3, 300), "another nonce");
        assert!(r.admit("mini", now, "486452656", b"<xml>another</xml>", now + 3, 300), "another app");
        // Once the timestamp is out of the window it is forgotten (the window check refuses it
        // before this is asked).
        assert!(r.admit("mp", now + 400, "x", b"", now + 400, 300));
        assert_eq!(r.len(), 1, "the old pairs were forgotten");
    }
}

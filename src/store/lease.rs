//! Leases: a node's hold on something shared (a WeChat delivery being answered, the right to
//! send an outbox), in a record of the store, until a time. With several nodes on one
//! database exactly one holds a live lease; a dead holder's lapses.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::dialogue::Millis;

/// A node's hold, until a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub node: String,
    pub until_ms: Millis,
}

/// Takes (or renews) the lease `space`/`key` for `node` until `until_ms` unless another
/// node's is live at `now`: whether `node` holds it now.
pub async fn hold(store: &dyn Store, space: &str, key: &str, node: &str, until_ms: Millis, now: Millis) -> Result<bool, StoreError> {
    let take = |old: Option<&[u8]>| {
        let held = old.and_then(|b| serde_json::from_slice::<Lease>(b).ok());
        Ok(match held {
            Some(l) if l.node != node && l.until_ms > now => old.map(<[u8]>::to_vec),
            _ => Some(serde_json::to_vec(&Lease { node: node.to_string(), until_ms }).expect("leases serialise")),
        })
    };
    let stored = store.update_record(space, key, &take).await?;
    Ok(stored.and_then(|b| serde_json::from_slice::<Lease>(&b).ok()).is_some_and(|l| l.node == node))
}

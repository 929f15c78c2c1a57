//! One lock per conversation, handed out first come, first served, so the messages of a
//! conversation are processed in arrival order even when they are sent concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Mutex as FairMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct ConversationLocks {
    locks: Mutex<HashMap<String, Arc<FairMutex<()>>>>,
}

/// Held while a step of one conversation runs.
pub struct Turn {
    _guard: OwnedMutexGuard<()>,
}

impl ConversationLocks {
    /// Waits (in arrival order: tokio's mutex is fair) for the conversation, at most `wait`.
    /// `None` means it stayed busy: the caller answers 503 instead of hanging.
    pub async fn lock(&self, conversation: &str, wait: Duration) -> Option<Turn> {
        let lock = {
            let mut map = self.locks.lock().expect("lock table poisoned");
            if map.len() > 4096 {
                // Drop locks nobody holds or waits for, so the table stays small.
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(conversation.to_string()).or_default().clone()
        };
        tokio::time::timeout(wait, lock.lock_owned()).await.ok().map(|g| Turn { _guard: g })
    }
}

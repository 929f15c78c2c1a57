//! Agent access beyond the password: an account can be disabled, and every session begun
//! before a password reset or a disabling is void. Kept in a record space of its own (agent
//! records stay as they are), and announced to the sockets of the sessions that end so that
//! they close at once instead of streaming on after their token stopped working.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::*;

const KEYSPACE: &str = "agent-access";

/// Failed logins of one account, kept in the store when several nodes share it, so that the
/// lockout holds on every node (each node also counts in memory, per address and account).
const LOGIN_FAILURES: &str = "login-failures";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Failures {
    count: u32,
    first_ms: Millis,
    locked_until_ms: Millis,
}

fn account_key(account: &str) -> String {
    account.chars().take(64).collect()
}

/// What is remembered of an agent's access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Access {
    #[serde(default)]
    pub disabled: bool,
    /// Sessions created before this are void (a password reset, a disabling).
    #[serde(default)]
    pub sessions_after_ms: Millis,
    /// The one earlier session that stays valid: the one an agent changed their own
    /// password from (its token's hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_session: Option<String>,
}

impl Access {
    /// Whether a session of this agent, created at `created_ms` with token hash `hash`,
    /// still holds.
    pub fn admits(&self, created_ms: Millis, hash: &str) -> bool {
        !self.disabled && (created_ms >= self.sessions_after_ms || self.kept_session.as_deref() == Some(hash))
    }
}

/// A session, or every session of an agent, that has just ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnded {
    /// One session, by the hash of its token (a logout).
    Token(String),
    /// Every session of this agent (a password reset, a disabling).
    Agent(String),
    /// Every session of this agent but one, by its token's hash (the agent changed their
    /// own password from that session).
    AgentBut(String, String),
}

impl SessionEnded {
    /// Whether this ends the session `token_hash` of `agent`.
    pub fn ends(&self, agent: &str, token_hash: &str) -> bool {
        match self {
            SessionEnded::Token(t) => t == token_hash,
            SessionEnded::Agent(a) => a == agent,
            SessionEnded::AgentBut(a, kept) => a == agent && kept != token_hash,
        }
    }
}

/// Ended sessions, for the sockets opened under them.
pub(super) fn channel() -> broadcast::Sender<SessionEnded> {
    broadcast::channel(256).0
}

impl Service {
    pub(super) async fn access(&self, agent: &str) -> Result<Access> {
        match self.store.record(KEYSPACE, agent).await? {
            None => Ok(Access::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt { key: format!("{KEYSPACE}/{agent}"), reason: e.to_string() }.into()),
        }
    }

    /// Stores an agent's access durably, then tells its sockets.
    pub(super) async fn set_access(&self, agent: &str, access: &Access) -> Result<()> {
        let bytes = serde_json::to_vec(access).expect("access records serialise");
        self.store.set_record(KEYSPACE, agent, Some(bytes)).await?;
        self.store.durable().await?;
        let ended = match &access.kept_session {
            Some(kept) => SessionEnded::AgentBut(agent.to_string(), kept.clone()),
            None => SessionEnded::Agent(agent.to_string()),
        };
        let _ = self.sessions_ended.send(ended);
        Ok(())
    }

    /// Voids every session the agent began before `at` (a password reset) but `keep` (the
    /// token hash of the session an agent changed their own password from).
    pub(super) async fn end_sessions(&self, agent: &str, at: Millis, keep: Option<String>) -> Result<()> {
        let mut access = self.access(agent).await?;
        access.sessions_after_ms = at;
        access.kept_session = keep;
        self.set_access(agent, &access).await
    }

    /// Sessions that end from now on, for a socket to watch its own.
    pub fn sessions_ended(&self) -> broadcast::Receiver<SessionEnded> {
        self.sessions_ended.subscribe()
    }

    /// Disables an agent (its sessions end, it cannot log in, it is set away) or enables it
    /// again. The conversations it holds stay assigned to it until another agent or an
    /// admin acts on them.
    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<AgentInfo> {
        let agent = self.store.agent(id).await?.ok_or_else(|| ServiceError::refused(Code::AgentNotFound, format!("agent {id} not found")))?;
        let mut access = self.access(id).await?;
        access.disabled = disabled;
        if disabled {
            access.sessions_after_ms = now_ms();
            access.kept_session = None;
        }
        self.set_access(id, &access).await?;
        if disabled && agent.status != AgentStatus::Away {
            return self.set_status(&agent, AgentStatus::Away).await;
        }
        Ok(self.agent_info(&agent, &self.actives().await?).await)
    }

    /// With a shared store: how long the account stays locked by failed logins counted on
    /// any node (`None`: not locked, or a single-node store, whose count is in memory).
    pub async fn shared_lockout(&self, account: &str) -> Result<Option<Duration>> {
        if self.store.notes().is_none() {
            return Ok(None);
        }
        let Some(bytes) = self.store.record(LOGIN_FAILURES, &account_key(account)).await? else { return Ok(None) };
        let f: Failures = serde_json::from_slice(&bytes).unwrap_or_default();
        let now = now_ms();
        Ok((f.locked_until_ms > now).then(|| Duration::from_millis(f.locked_until_ms - now)))
    }

    /// Counts a failed login of `account` for every node (shared stores only): past `limit`
    /// within `lockout`, the account is locked for `lockout`.
    pub async fn count_shared_failure(&self, account: &str, limit: u32, lockout: Duration) -> Result<()> {
        if self.store.notes().is_none() {
            return Ok(());
        }
        let now = now_ms();
        let lockout_ms = lockout.as_millis() as Millis;
        let count = |old: Option<&[u8]>| {
            let mut f: Failures = old.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            if now.saturating_sub(f.first_ms) > lockout_ms || (f.locked_until_ms != 0 && f.locked_until_ms <= now) {
                f = Failures { count: 0, first_ms: now, locked_until_ms: 0 };
            }
            f.count += 1;
            if f.count >= limit {
                f.locked_until_ms = now + lockout_ms;
            }
            Ok(Some(serde_json::to_vec(&f).expect("failures serialise")))
        };
        self.store.update_record(LOGIN_FAILURES, &account_key(account), &count).await?;
        Ok(())
    }

    /// Forgets an account's shared failures (a right password, an admin's unlock); whether
    /// it was locked.
    pub async fn clear_shared_failures(&self, account: &str) -> Result<bool> {
        if self.store.notes().is_none() {
            return Ok(false);
        }
        let locked = self.shared_lockout(account).await?.is_some();
        self.store.set_record(LOGIN_FAILURES, &account_key(account), None).await?;
        Ok(locked)
    }

    /// Whether the agent is disabled.
    pub async fn is_disabled(&self, id: &str) -> Result<bool> {
        Ok(self.access(id).await?.disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn a_password_reset_ends_every_session_of_the_agent() {
        let f = testing::service(|_| {}).await;
        f.service.put_agent("a1", "A", "password-123", vec![], 2).await.unwrap();
        let (old, _) = f.service.login("a1", "password-123").await.unwrap();
        let (other, _) = f.service.login("a1", "password-123").await.unwrap();
        let mut ended = f.service.sessions_ended();
        f.service.put_agent("a1", "A", "another-pass-456", vec![], 2).await.unwrap();
        assert!(ended.recv().await.unwrap().ends("a1", &auth::token_hash(&old)), "the sockets are told");
        for t in [&old, &other] {
            assert!(matches!(f.service.authorize_agent(t).await, Err(ServiceError::Unauthorized)));
        }
        assert_eq!(code(f.service.login("a1", "password-123").await), Code::Unauthorized);
        let (new, _) = f.service.login("a1", "another-pass-456").await.unwrap();
        assert_eq!(f.service.authorize_agent(&new).await.unwrap().id, "a1");
        assert_eq!(code(f.service.put_agent("a1", "A", "qwertyuiop", vec![], 2).await), Code::WeakPassword);
    }

    #[tokio::test]
    async fn a_disabled_agent_cannot_log_in_until_enabled() {
        let f = testing::service(|_| {}).await;
        f.agent("a1", true).await;
        let (token, _) = f.service.login("a1", "password-123").await.unwrap();
        let info = f.service.set_disabled("a1", true).await.unwrap();
        assert!(info.disabled);
        assert_eq!(info.status, AgentStatus::Away, "a disabled agent is not offered conversations");
        assert!(matches!(f.service.authorize_agent(&token).await, Err(ServiceError::Unauthorized)));
        let e = f.service.login("a1", "password-123").await.unwrap_err();
        assert_eq!(e.code(), Code::AgentDisabled);
        assert!(e.to_string().contains("a1"), "{e}");
        assert!(!f.service.set_disabled("a1", false).await.unwrap().disabled);
        assert!(matches!(f.service.authorize_agent(&token).await, Err(ServiceError::Unauthorized)), "old sessions stay ended");
        f.service.login("a1", "password-123").await.unwrap();
        assert_eq!(code(f.service.set_disabled("nobody", true).await), Code::AgentNotFound);
    }
}

//! People and roles: who may use the admin API (the admin token, or a session of a person
//! with the admin role), the role checks of supervisors' work, editing an account without
//! replacing it, an admin's password reset, an agent changing their own password, and the
//! rules every new password and account field follows.

use serde::Deserialize;

use super::*;

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub enum Admin {
    /// The admin token: automation and the first start, before any person is an admin.
    Token,
    /// A logged-in person with the admin role.
    Person(Agent),
}

impl Admin {
    /// The person's id, if a person is calling.
    pub fn person(&self) -> Option<&str> {
        match self {
            Admin::Token => None,
            Admin::Person(a) => Some(&a.id),
        }
    }
}

/// Changes to an account's profile, each optional (absent: unchanged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub skills: Option<Vec<String>>,
    pub max_concurrent: Option<u32>,
    pub role: Option<Role>,
}

/// The most characters a password may have: hashing costs the same per byte, and nobody
/// types more.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The error when `agent` lacks `role`.
pub(super) fn require(agent: &Agent, role: Role) -> Result<()> {
    if agent.can(role) {
        return Ok(());
    }
    Err(ServiceError::refused(Code::RoleRequired, format!("this needs the {role} role; {} has the {} role", agent.id, agent.role)))
}

pub(super) fn checked_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ServiceError::refused(Code::InvalidAgent, "an agent name is 1 to 64 characters"));
    }
    Ok(name.to_string())
}

/// A new password: 8 to 128 characters and not easy to guess.
pub(super) fn check_password(password: &str, id: &str, name: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(ServiceError::refused(Code::InvalidPassword, format!("a password has at least 8 characters, not {n}")));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ServiceError::refused(Code::InvalidPassword, format!("a password has at most {MAX_PASSWORD_CHARS} characters, not {n}")));
    }
    if let Some(why) = auth::weak_password(password, id, name) {
        return Err(ServiceError::refused(Code::WeakPassword, format!("the password is too easy to guess: {why}; choose another")));
    }
    Ok(())
}

pub(super) fn check_capacity(max_concurrent: u32) -> Result<()> {
    if max_concurrent == 0 || max_concurrent > 100 {
        return Err(ServiceError::refused(Code::InvalidAgent, format!("max_concurrent is 1 to 100, not {max_concurrent}")));
    }
    Ok(())
}

/// Skills trimmed, empty ones dropped, each at most 32 characters, at most 20; none means
/// `general`.
pub(super) fn checked_skills(skills: Vec<String>) -> Result<Vec<String>> {
    let skills: Vec<String> = skills.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if skills.len() > 20 {
        return Err(ServiceError::refused(Code::InvalidAgent, format!("an agent has at most 20 skills, not {}", skills.len())));
    }
    if let Some(long) = skills.iter().find(|s| s.chars().count() > 32) {
        return Err(ServiceError::refused(Code::InvalidAgent, format!("skill {long:?} is longer than 32 characters")));
    }
    Ok(if skills.is_empty() { vec!["general".to_string()] } else { skills })
}

impl Service {
    /// The caller of the admin API: the admin token, or a session of a person with the admin
    /// role (another person's session is refused with `role_required`, naming the role).
    pub async fn authorize_admin(&self, token: &str) -> Result<Admin> {
        if auth::same(&auth::token_hash(token), &self.admin_token_hash) {
            return Ok(Admin::Token);
        }
        let agent = self.authorize_agent(token).await?;
        require(&agent, Role::Admin)?;
        Ok(Admin::Person(agent))
    }

    /// The person a session belongs to, if they have `role`.
    pub async fn authorize_role(&self, token: &str, role: Role) -> Result<Agent> {
        let agent = self.authorize_agent(token).await?;
        require(&agent, role)?;
        Ok(agent)
    }

    pub(super) async fn hash_password(&self, password: &str) -> Result<String> {
        let (p, rounds) = (password.to_string(), self.config.password_rounds);
        tokio::task::spawn_blocking(move || auth::hash_password(&p, rounds)).await.map_err(|e| ServiceError::Internal(e.to_string()))
    }

    async fn existing(&self, id: &str) -> Result<Agent> {
        self.store.agent(id).await?.ok_or_else(|| ServiceError::refused(Code::AgentNotFound, format!("agent {id} not found")))
    }

    /// Changes an account's name, skills, capacity or role. An admin cannot take the admin
    /// role from themselves (someone must be able to give it back).
    pub async fn update_agent(&self, id: &str, update: AgentUpdate, by: &Admin) -> Result<AgentInfo> {
        // The same lock as presence changes: both rewrite the agent record.
        let _g = self.assigning.lock().await;
        let mut a = self.existing(id).await?;
        if let Some(name) = &update.name {
            a.name = checked_name(name)?;
        }
        if let Some(skills) = update.skills {
            a.skills = checked_skills(skills)?;
        }
        if let Some(max) = update.max_concurrent {
            check_capacity(max)?;
            a.max_concurrent = max;
        }
        if let Some(role) = update.role {
            if by.person() == Some(id) && role < Role::Admin {
                return Err(ServiceError::refused(Code::InvalidAgent, "you cannot take the admin role from yourself; ask another admin"));
            }
            a.role = role;
        }
        self.commit(Change { agent: Some(a.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        drop(_g);
        if self.config.assignment == Assignment::Auto {
            // More capacity or a new skill may let a queued visitor in.
            self.assign_waiting().await?;
        }
        Ok(self.agent_info(&a, &self.actives().await?).await)
    }

    /// An admin sets a new password: every session of the account ends.
    pub async fn reset_password(&self, id: &str, password: &str) -> Result<AgentInfo> {
        let a = self.existing(id).await?;
        check_password(password, &a.id, &a.name)?;
        let password_hash = self.hash_password(password).await?;
        let reset_at = now_ms();
        let _g = self.assigning.lock().await;
        let mut a = self.existing(id).await?;
        a.password_hash = password_hash;
        self.commit(Change { agent: Some(a.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        drop(_g);
        self.end_sessions(id, reset_at, None).await?;
        Ok(self.agent_info(&a, &self.actives().await?).await)
    }

    /// An agent changes their own password with the current one: every other session of
    /// theirs ends; the one they changed it from goes on.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Result<AgentInfo> {
        let (agent, _) = self.agent_session(token).await?;
        let (p, stored) = (current.to_string(), agent.password_hash.clone());
        let right = tokio::task::spawn_blocking(move || auth::verify_password(&p, &stored)).await.map_err(|e| ServiceError::Internal(e.to_string()))?;
        if !right {
            return Err(ServiceError::refused(Code::WrongPassword, "the current password is not right; nothing was changed"));
        }
        if current == new {
            return Err(ServiceError::refused(Code::InvalidPassword, "the new password is the same as the current one; choose another"));
        }
        check_password(new, &agent.id, &agent.name)?;
        let password_hash = self.hash_password(new).await?;
        let reset_at = now_ms();
        let _g = self.assigning.lock().await;
        let mut a = self.existing(&agent.id).await?;
        a.password_hash = password_hash;
        self.commit(Change { agent: Some(a.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        drop(_g);
        self.end_sessions(&a.id, reset_at, Some(auth::token_hash(token))).await?;
        Ok(self.agent_info(&a, &self.actives().await?).await)
    }

    /// Disables or enables an account, as an admin; an admin cannot disable themselves.
    pub async fn set_disabled_by(&self, id: &str, disabled: bool, by: &Admin) -> Result<AgentInfo> {
        if disabled && by.person() == Some(id) {
            return Err(ServiceError::refused(Code::InvalidAgent, "you cannot disable your own account; ask another admin"));
        }
        self.set_disabled(id, disabled).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn roles_decide_who_may_administer() {
        let f = testing::service(|_| {}).await;
        f.agent("a1", false).await;
        f.service.put_person("boss", "老板", "password-123", vec![], 2, Some(Role::Admin)).await.unwrap();
        assert!(matches!(f.service.authorize_admin("admin").await.unwrap(), Admin::Token), "the admin token still works");
        let (agent, _) = f.service.login("a1", "password-123").await.unwrap();
        let e = f.service.authorize_admin(&agent).await.unwrap_err();
        assert_eq!(e.code(), Code::RoleRequired);
        assert!(e.to_string().contains("admin role") && e.to_string().contains("a1 has the agent role"), "{e}");
        let (boss, _) = f.service.login("boss", "password-123").await.unwrap();
        assert_eq!(f.service.authorize_admin(&boss).await.unwrap().person(), Some("boss"));
        assert!(matches!(f.service.authorize_admin("wrong").await, Err(ServiceError::Unauthorized)));
        // A replaced account keeps its role; an update changes it.
        f.service.put_agent("boss", "老板", "another-pass-456", vec![], 2).await.unwrap();
        assert_eq!(f.service.store().agent("boss").await.unwrap().unwrap().role, Role::Admin);
        let by = Admin::Token;
        let info = f.service.update_agent("a1", AgentUpdate { role: Some(Role::Supervisor), max_concurrent: Some(4), ..Default::default() }, &by).await.unwrap();
        assert_eq!((info.role, info.max_concurrent), (Role::Supervisor, 4));
        assert_eq!(f.service.authorize_role(&agent, Role::Supervisor).await.unwrap().id, "a1", "a role change needs no new login");
        assert_eq!(code(f.service.update_agent("a1", AgentUpdate { max_concurrent: Some(0), ..Default::default() }, &by).await), Code::InvalidAgent);
        assert_eq!(code(f.service.update_agent("nobody", AgentUpdate::default(), &by).await), Code::AgentNotFound);
        let me = Admin::Person(f.service.store().agent("boss").await.unwrap().unwrap());
        assert_eq!(code(f.service.update_agent("boss", AgentUpdate { role: Some(Role::Agent), ..Default::default() }, &me).await), Code::InvalidAgent);
        assert_eq!(code(f.service.set_disabled_by("boss", true, &me).await), Code::InvalidAgent);
    }

    #[tokio::test]
    async fn own_password_changes_keep_the_current_session_only() {
        let f = testing::service(|_| {}).await;
        f.agent("a1", false).await;
        let (here, _) = f.service.login("a1", "password-123").await.unwrap();
        let (elsewhere, _) = f.service.login("a1", "password-123").await.unwrap();
        assert_eq!(code(f.service.change_password(&here, "not-the-password", "new-secret-789").await), Code::WrongPassword);
        assert_eq!(code(f.service.change_password(&here, "password-123", "password-123").await), Code::InvalidPassword);
        assert_eq!(code(f.service.change_password(&here, "password-123", "short").await), Code::InvalidPassword);
        assert_eq!(code(f.service.change_password(&here, "password-123", &"长".repeat(129)).await), Code::InvalidPassword);
        assert_eq!(code(f.service.change_password(&here, "password-123", "12345678").await), Code::WeakPassword);
        let mut ended = f.service.sessions_ended();
        f.service.change_password(&here, "password-123", "new-secret-789").await.unwrap();
        let e = ended.recv().await.unwrap();
        assert!(e.ends("a1", &auth::token_hash(&elsewhere)) && !e.ends("a1", &auth::token_hash(&here)), "only the other sockets close");
        assert_eq!(f.service.authorize_agent(&here).await.unwrap().id, "a1");
        assert!(matches!(f.service.authorize_agent(&elsewhere).await, Err(ServiceError::Unauthorized)));
        assert_eq!(code(f.service.login("a1", "password-123").await), Code::Unauthorized);
        f.service.login("a1", "new-secret-789").await.unwrap();
        // An admin's reset afterwards ends the kept session too.
        f.service.reset_password("a1", "reset-by-admin-1").await.unwrap();
        assert!(matches!(f.service.authorize_agent(&here).await, Err(ServiceError::Unauthorized)));
        assert_eq!(code(f.service.reset_password("a1", "abcdefghij").await), Code::WeakPassword);
    }
}

//! Administration: reloading the knowledge and intents, statistics, tickets, and teaching
//! the bot a question from the unanswered list.

use super::*;

impl Service {
    // ---- admin ----------------------------------------------------------------------------

    /// Re-imports knowledge and intents and swaps them in; on failure the old ones keep
    /// serving and the error is reported. With other nodes on the store, what loaded is
    /// published to them.
    pub async fn reload(&self) -> ReloadStatus {
        let mut status = self.reload_from_sources().await;
        if status.error.is_none() {
            if let Err(e) = self.share_knowledge().await {
                tracing::error!(error = %e, "the knowledge reloaded here but could not be shared with the other nodes");
                status.error = Some(format!("reloaded on this node, but not shared with the other nodes: {e}"));
            }
        }
        status
    }

    /// Re-imports knowledge and intents from the source folders and swaps them in.
    pub(super) async fn reload_from_sources(&self) -> ReloadStatus {
        let _only_one = self.reloading.lock().await;
        let sources = self.sources.clone();
        let result = tokio::task::spawn_blocking(move || Brain::load(&sources)).await;
        let mut status = self.reload.lock().expect("reload status poisoned").clone();
        status.at_ms = now_ms();
        match result {
            Ok(Ok(brain)) => {
                status = ReloadStatus {
                    generation: brain.generation.clone(),
                    articles: brain.engine.articles().len(),
                    intents: brain.intents.all().len(),
                    at_ms: status.at_ms,
                    error: None,
                };
                *self.brain.write().expect("brain lock poisoned") = Arc::new(brain);
                tracing::info!(generation = %status.generation, articles = status.articles, intents = status.intents, "knowledge reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reload failed; the previous knowledge keeps serving");
                status.error = Some(e.to_string());
            }
            Err(e) => status.error = Some(format!("the reload task failed: {e}")),
        }
        *self.reload.lock().expect("reload status poisoned") = status.clone();
        status
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload.lock().expect("reload status poisoned").clone()
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    pub async fn stats(&self) -> Result<Stats> {
        stats::compute(&*self.store, now_ms()).await
    }

    /// The report over `range` (see [`super::reports`]).
    pub async fn report(&self, range: Range) -> Result<Report> {
        let brain = self.brain();
        let title = |id: &str| brain.article(id).map(|a| a.title.clone());
        super::reports::compute(&*self.store, range, &title).await
    }

    /// Local days' offset from UTC that reports use unless asked otherwise: the business
    /// hours' (China by default).
    pub fn report_offset_minutes(&self) -> i32 {
        self.config.hours.utc_offset_minutes
    }

    pub async fn tickets(&self) -> Result<Vec<Ticket>> {
        Ok(self.store.tickets().await?)
    }

    /// Adds a question to an article's similar questions (from the unanswered list): writes
    /// the article file under the knowledge folder, then reloads.
    pub async fn add_similar(&self, article: &str, question: &str) -> Result<ReloadStatus> {
        let question = question.trim();
        if question.is_empty() || question.chars().count() > 200 || question.contains(['\n', '"', '\\']) {
            return Err(ServiceError::refused(Code::InvalidQuestion, "the question must be one line of 1 to 200 characters without quotes or backslashes"));
        }
        let brain = self.brain();
        if brain.article(article).is_none() {
            return Err(ServiceError::refused(Code::ArticleNotFound, format!("article {article} not found")));
        }
        let dir = self.sources.knowledge.clone();
        let (article, question) = (article.to_string(), question.to_string());
        let taught = question.clone();
        tokio::task::spawn_blocking(move || crate::knowledge::add_similar(&dir, &article, &taught))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::refused(Code::BadRequest, e.to_string()))?;
        let status = self.reload().await;
        if let Some(e) = &status.error {
            return Err(ServiceError::Internal(format!("the question was added but the reload failed: {e}")));
        }
        // The bot answers it now: it leaves the unanswered lists.
        if let Some(q) = super::turn::question_key(&question) {
            self.commit(Change { answered: vec![q], at_ms: now_ms(), ..Default::default() }).await?;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn an_added_question_is_answered_after_the_reload() {
        let f = testing::service(|_| {}).await;
        assert_eq!(f.service.reload_status().articles, 2);
        assert_eq!(code(f.service.add_similar("nope", "运费").await), Code::ArticleNotFound);
        assert_eq!(code(f.service.add_similar("invoice", "a\"b").await), Code::InvalidQuestion);
        let before = f.service.reload_status().generation;
        let status = f.service.add_similar("invoice", "开票流程是什么").await.unwrap();
        assert_ne!(status.generation, before);
        let reply = f.service.brain().ask("开票流程是什么").unwrap();
        assert_eq!(reply.candidates[0].id, "invoice");
    }

    #[tokio::test]
    async fn a_broken_source_keeps_the_old_knowledge_serving() {
        let f = testing::service(|_| {}).await;
        let before = f.service.reload_status().generation;
        std::fs::write(f.service.sources().knowledge.join("broken.md"), "no front matter").unwrap();
        let status = f.service.reload().await;
        assert!(status.error.is_some());
        assert_eq!(status.generation, before);
        assert_eq!(f.service.brain().generation, before);
    }
}

//! Quality review (质检): a supervisor scores a resolved conversation of an agent's on the
//! configured rubric (each criterion 1–5 with a comment, a weighted total out of 100), and
//! the agent reads their reviews. Reviews are records in the store, so every node sees them.

use serde::{Deserialize, Serialize};

use super::*;

const KEYSPACE: &str = "quality-reviews";

/// The most characters of a review's comments (each criterion's, and the overall one).
pub const MAX_REVIEW_COMMENT_CHARS: usize = 500;

/// The highest score of one criterion.
pub const MAX_SCORE: u8 = 5;

/// One criterion of the rubric and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub name: String,
    pub weight: u32,
}

/// The rubric (`[quality]` in the config: `[[quality.criteria]]` tables of `name` and
/// `weight`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    pub criteria: Vec<Criterion>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        let c = |name: &str, weight| Criterion { name: name.into(), weight };
        QualityConfig { criteria: vec![c("礼貌用语", 25), c("解决问题", 40), c("响应速度", 20), c("规范用语", 15)] }
    }
}

impl QualityConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.criteria.is_empty() || self.criteria.len() > 20 {
            return Err(format!("quality.criteria: 1 to 20 criteria, not {}", self.criteria.len()));
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.criteria {
            if c.name.trim().is_empty() || c.name.chars().count() > 32 {
                return Err(format!("quality.criteria: a name is 1 to 32 characters, not {:?}", c.name));
            }
            if !names.insert(c.name.trim()) {
                return Err(format!("quality.criteria: {:?} is listed twice", c.name));
            }
            if c.weight == 0 || c.weight > 100 {
                return Err(format!("quality.criteria: {:?} has weight {}; weights are 1 to 100", c.name, c.weight));
            }
        }
        Ok(())
    }
}

/// A criterion's score as a supervisor gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreGiven {
    pub criterion: String,
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A review as a supervisor sends it; `agent` defaults to whoever held the conversation last.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub conversation: String,
    #[serde(default)]
    pub agent: Option<String>,
    pub scores: Vec<ScoreGiven>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One criterion's score as stored, with the weight it had then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub criterion: String,
    pub weight: u32,
    pub score: u8,
    pub comment: String,
}

/// A stored review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub conversation: String,
    pub handoff: u64,
    /// Who is reviewed.
    pub agent: String,
    pub reviewer: String,
    pub reviewer_name: String,
    /// In the rubric's order.
    pub scores: Vec<Score>,
    pub comment: String,
    /// Σ weight × score / (5 × Σ weight) × 100, to one decimal.
    pub total: f64,
    pub at_ms: Millis,
}

fn comment(text: Option<String>, what: &str) -> Result<String> {
    let text = text.unwrap_or_default().trim().to_string();
    let n = text.chars().count();
    if n > MAX_REVIEW_COMMENT_CHARS {
        return Err(ServiceError::refused(Code::InvalidReview, format!("the comment on {what} has {n} characters; at most {MAX_REVIEW_COMMENT_CHARS}")));
    }
    Ok(text)
}

/// The scores in the rubric's order: every criterion once, each 1 to 5.
fn scored(rubric: &QualityConfig, given: Vec<ScoreGiven>) -> Result<(Vec<Score>, f64)> {
    let mut given: Vec<Option<ScoreGiven>> = given.into_iter().map(Some).collect();
    if let Some(unknown) = given.iter().flatten().find(|g| !rubric.criteria.iter().any(|c| c.name == g.criterion)) {
        let names: Vec<&str> = rubric.criteria.iter().map(|c| c.name.as_str()).collect();
        return Err(ServiceError::refused(Code::InvalidReview, format!("{:?} is not a criterion of the rubric ({})", unknown.criterion, names.join("、"))));
    }
    let mut scores = Vec::new();
    for c in &rubric.criteria {
        let mut matching = given.iter_mut().filter(|g| g.as_ref().is_some_and(|g| g.criterion == c.name));
        let g = matching.next().and_then(Option::take).ok_or_else(|| ServiceError::refused(Code::InvalidReview, format!("criterion {:?} is not scored", c.name)))?;
        if matching.next().is_some() {
            return Err(ServiceError::refused(Code::InvalidReview, format!("criterion {:?} is scored twice", c.name)));
        }
        if !(1..=MAX_SCORE).contains(&g.score) {
            return Err(ServiceError::refused(Code::InvalidReview, format!("criterion {:?} is scored {}; scores are 1 to {MAX_SCORE}", c.name, g.score)));
        }
        scores.push(Score { criterion: c.name.clone(), weight: c.weight, score: g.score, comment: comment(g.comment, &c.name)? });
    }
    let weights: u32 = scores.iter().map(|s| s.weight).sum();
    let points: u32 = scores.iter().map(|s| s.weight * s.score as u32).sum();
    let total = (1000.0 * points as f64 / (MAX_SCORE as u32 * weights) as f64).round() / 10.0;
    Ok((scores, total))
}

impl Service {
    pub fn rubric(&self) -> &QualityConfig {
        &self.config.quality
    }

    /// A supervisor reviews a resolved (or returned) conversation of an agent who took part
    /// in it; reviewing the same handoff's agent again replaces the review.
    pub async fn review(&self, supervisor: &Agent, request: ReviewRequest) -> Result<Review> {
        people::require(supervisor, Role::Supervisor)?;
        let conv = self.load_conversation(&request.conversation).await?;
        let h = self.handoff_of(&conv).await?.ok_or_else(|| {
            ServiceError::refused(Code::NotHandedOff, format!("conversation {} was never handed to an agent: there is nothing to review", conv.id))
        })?;
        if !matches!(h.status, HandoffStatus::Resolved | HandoffStatus::Returned) {
            return Err(ServiceError::refused(Code::NotResolved, format!("conversation {} is not resolved yet; review it once it is", conv.id)));
        }
        let took_part = self.store.summary(&conv.id).await?.map(|s| s.agents).unwrap_or_default();
        let agent = match request.agent.or(h.agent.clone()) {
            Some(a) if a == supervisor.id => {
                return Err(ServiceError::refused(Code::InvalidReview, "you cannot review yourself; name the agent to review (`agent`) or ask another supervisor"));
            }
            Some(a) if took_part.contains(&a) || h.agent.as_deref() == Some(&a) => a,
            Some(a) => {
                return Err(ServiceError::refused(Code::InvalidReview, format!("agent {a} did not take part in conversation {} (it had: {})", conv.id, took_part.join(", "))));
            }
            None => return Err(ServiceError::refused(Code::InvalidReview, "name the agent to review (`agent`)")),
        };
        let (scores, total) = scored(&self.config.quality, request.scores)?;
        let review = Review {
            conversation: conv.id.clone(),
            handoff: h.id,
            agent: agent.clone(),
            reviewer: supervisor.id.clone(),
            reviewer_name: supervisor.name.clone(),
            scores,
            comment: comment(request.comment, "the conversation")?,
            total,
            at_ms: now_ms(),
        };
        let key = format!("{agent}/{}/{}", conv.id, h.id);
        self.store.set_record(KEYSPACE, &key, Some(serde_json::to_vec(&review).expect("reviews serialise"))).await?;
        self.store.durable().await?;
        self.hub.to_agents(&AgentEvent::Reviewed { conversation: conv.id, agent });
        Ok(review)
    }

    /// The reviews of `agent` (default: the viewer's own), newest first. Only a supervisor
    /// reads another agent's.
    pub async fn reviews(&self, viewer: &Agent, agent: Option<&str>) -> Result<Vec<Review>> {
        let agent = agent.unwrap_or(&viewer.id);
        if agent != viewer.id {
            people::require(viewer, Role::Supervisor)?;
        }
        // Agent ids have no '/': the prefix holds this agent's reviews only.
        let mut out = Vec::new();
        for (key, bytes) in self.store.records(KEYSPACE, &format!("{agent}/")).await? {
            out.push(serde_json::from_slice::<Review>(&bytes).map_err(|e| StoreError::Corrupt { key: format!("{KEYSPACE}/{key}"), reason: e.to_string() })?);
        }
        out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    fn all(score: u8) -> Vec<ScoreGiven> {
        QualityConfig::default().criteria.iter().map(|c| ScoreGiven { criterion: c.name.clone(), score, comment: None }).collect()
    }

    #[test]
    fn totals_weigh_each_criterion_and_bad_scores_are_named() {
        let rubric = QualityConfig::default();
        assert_eq!(scored(&rubric, all(5)).unwrap().1, 100.0);
        assert_eq!(scored(&rubric, all(1)).unwrap().1, 20.0);
        let mut mixed = all(5);
        mixed[1].score = 3; // 解决问题, weight 40: loses 40 × 2/5 = 16 points
        assert_eq!(scored(&rubric, mixed).unwrap().1, 84.0);
        let err = |g| scored(&rubric, g).unwrap_err().to_string();
        assert!(err(all(6)).contains("scored 6"), "{}", err(all(6)));
        assert!(err(all(5)[1..].to_vec()).contains("礼貌用语\" is not scored"));
        let mut twice = all(5);
        twice.push(twice[0].clone());
        assert!(err(twice).contains("twice"));
        let mut unknown = all(5);
        unknown[0].criterion = "微笑".into();
        assert!(err(unknown).contains("微笑"));
        let mut long = all(5);
        long[0].comment = Some("好".repeat(501));
        assert!(err(long).contains("501"));
        assert!(QualityConfig { criteria: vec![] }.validate().is_err());
        assert!(QualityConfig { criteria: vec![Criterion { name: "a".into(), weight: 0 }] }.validate().unwrap_err().contains("weight 0"));
        rubric.validate().unwrap();
    }

    #[tokio::test]
    async fn supervisors_review_resolved_conversations_and_agents_see_their_own() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let a2 = f.agent("a2", true).await;
        f.service.put_person("sup", "主管", "password-123", vec![], 2, Some(Role::Supervisor)).await.unwrap();
        let sup = f.service.store().agent("sup").await.unwrap().unwrap();
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.claim(&a1, &id).await.unwrap();
        let request = |agent: Option<&str>, scores| ReviewRequest { conversation: id.clone(), agent: agent.map(Into::into), scores, comment: Some("整体不错".into()) };
        assert_eq!(code(f.service.review(&sup, request(None, all(4))).await), Code::NotResolved);
        f.service.agent_message(&a1, &id, "您好，请问有什么可以帮您？").await.unwrap();
        f.service.resolve(&a1, &id).await.unwrap();
        assert_eq!(code(f.service.review(&a2, request(None, all(4))).await), Code::RoleRequired);
        assert_eq!(code(f.service.review(&sup, request(Some("a2"), all(4))).await), Code::InvalidReview, "a2 took no part");
        assert_eq!(code(f.service.review(&sup, request(None, all(0))).await), Code::InvalidReview);
        let review = f.service.review(&sup, request(None, all(4))).await.unwrap();
        assert_eq!((review.agent.as_str(), review.total, review.scores.len()), ("a1", 80.0, 4));
        // Scoring again replaces the review.
        f.service.review(&sup, request(None, all(5))).await.unwrap();
        let mine = f.service.reviews(&a1, None).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].total, mine[0].reviewer_name.as_str(), mine[0].comment.as_str()), (100.0, "主管", "整体不错"));
        assert!(f.service.reviews(&a2, None).await.unwrap().is_empty(), "a2 has none");
        assert_eq!(code(f.service.reviews(&a2, Some("a1")).await), Code::RoleRequired, "nor reads a1's");
        assert_eq!(f.service.reviews(&sup, Some("a1")).await.unwrap().len(), 1);
    }
}

//! The PostgreSQL implementation of [`Store`], for several kefu nodes sharing one database:
//! every change is one transaction, and a step whose conversation another node moved on is
//! refused by a conditional update (the same rule the sled store applies in its writer).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::de::DeserializeOwned;
use serde::Serialize;
use deadpool_postgres::Transaction;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{NoTls, Row, Statement};

use super::report::{self, Before, HourCounts, Marks, NameKind, Span};
use super::{Change, CommitHint, Committed, Counters, Durable, Feedback, Hits, HistoryQuery, Outcome, Session, Store, StoreError, Summary, Update};
use crate::dialogue::{Conversation, Message, Sender};
use crate::handoff::{Agent, Handoff, HandoffStatus, Priority, Rating, Ticket};

/// The schema, in order; each entry runs once, in a transaction, recorded in
/// `kefu_migrations`. Append only: a shipped migration is never edited.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE conversations (id text PRIMARY KEY, last_seq bigint NOT NULL, updated_ms bigint NOT NULL, body text NOT NULL);
CREATE TABLE messages (conversation text NOT NULL, seq bigint NOT NULL, client_id text, body text NOT NULL,
    PRIMARY KEY (conversation, seq));
CREATE UNIQUE INDEX messages_client_id ON messages (conversation, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE identities (user_id text PRIMARY KEY, conversation text NOT NULL);
CREATE TABLE handoffs (id bigint PRIMARY KEY, status text NOT NULL, agent text, priority smallint NOT NULL,
    created_ms bigint NOT NULL, body text NOT NULL);
CREATE INDEX handoffs_queue ON handoffs (priority, created_ms, id) WHERE status = 'queued';
CREATE INDEX handoffs_assigned ON handoffs (agent, id) WHERE status = 'assigned';
CREATE TABLE agents (id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE sessions (token_hash text PRIMARY KEY, body text NOT NULL);
CREATE TABLE tickets (id bigint PRIMARY KEY, body text NOT NULL);
CREATE TABLE ratings (conversation text NOT NULL, which text NOT NULL, body text NOT NULL, PRIMARY KEY (conversation, which));
CREATE TABLE feedback (conversation text NOT NULL, seq bigint NOT NULL, body text NOT NULL, PRIMARY KEY (conversation, seq));
CREATE TABLE unanswered (question text PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE message_hours (hour bigint PRIMARY KEY, n bigint NOT NULL);
-- Keys are bytes: channels separate their parts with NUL, which text cannot hold, and
-- bytea sorts in byte order, the order the sled store keeps.
CREATE TABLE records (space text NOT NULL, key bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (space, key));
CREATE SEQUENCE ids;
"#, r#"
-- The history index: one summary per conversation, written with each step (store/history.rs).
CREATE TABLE conversation_history (id text PRIMARY KEY, created_ms bigint NOT NULL, channel text NOT NULL,
    user_id text, visitor_name text, agents text[] NOT NULL, bot_answered boolean NOT NULL,
    handed_off boolean NOT NULL, ticket boolean NOT NULL, rated boolean NOT NULL, text text NOT NULL,
    body text NOT NULL);
CREATE INDEX conversation_history_order ON conversation_history (created_ms DESC, id);
"#, r#"
-- Report aggregates (store/report.rs), kept in each change's transaction. Counters are
-- spread over shards (chosen per conversation) so that concurrent steps do not queue on
-- one hot row; reads sum the shards.
CREATE TABLE report_hours (hour bigint NOT NULL, scope text NOT NULL, counter text NOT NULL, shard smallint NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (hour, scope, counter, shard));
CREATE TABLE report_marks (conversation text PRIMARY KEY, body text NOT NULL);
CREATE TABLE report_names (kind text NOT NULL, hour bigint NOT NULL, name text NOT NULL, shard smallint NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (kind, hour, name, shard));
CREATE TABLE report_answered (question text PRIMARY KEY, at_ms bigint NOT NULL);
"#, r#"
-- Named counters also per UTC day (report::Span): a long range reads days, not hours.
INSERT INTO report_names (kind, hour, name, shard, n)
    SELECT kind || '.day', hour - hour % 24, name, shard, sum(n)::bigint FROM report_names
    WHERE kind IN ('article', 'question') GROUP BY kind, hour - hour % 24, name, shard;
"#, r#"
-- The history text index (store/history.rs `terms`): each pair of adjacent characters within
-- one message of a summary's text, as a generated column under a GIN index, so a search finds
-- the summaries holding every pair of its phrase without reading the others. Characters, not
-- bytes: the database is UTF-8 (kefu stores Chinese text).
CREATE FUNCTION kefu_history_terms(t text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT p), '{}') FROM
        (SELECT substr(t, i, 2) AS p FROM generate_series(1, char_length(t) - 1) AS i) AS pairs
    WHERE strpos(p, E'\n') = 0
$$;
ALTER TABLE conversation_history ADD COLUMN terms text[] GENERATED ALWAYS AS (kefu_history_terms(text)) STORED;
CREATE INDEX conversation_history_terms ON conversation_history USING gin (terms);
"#, r#"
-- Visitor searches through indexes too: a verified user's conversations by id, and part of a
-- visitor's name by its character pairs (as the text's).
CREATE INDEX conversation_history_user ON conversation_history (user_id);
ALTER TABLE conversation_history ADD COLUMN visitor_terms text[]
    GENERATED ALWAYS AS (kefu_history_terms(coalesce(visitor_name, ''))) STORED;
CREATE INDEX conversation_history_visitor_terms ON conversation_history USING gin (visitor_terms);
"#, r#"
-- The SLA watch's index: when a ticket's next SLA clock runs out (handoff/ticket.rs
-- `Ticket::next_due`, said again here over the stored JSON), for tickets with a clock running.
CREATE FUNCTION kefu_ticket_next_due(body text) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(
        CASE WHEN NOT coalesce((b->'sla'->>'first_response_breached')::boolean, false) AND b->>'first_response_ms' IS NULL
             THEN (b->'sla'->>'first_response_due_ms')::bigint END,
        CASE WHEN NOT coalesce((b->'sla'->>'resolution_breached')::boolean, false)
                  AND coalesce(b->>'status', 'new') NOT IN ('resolved', 'closed') AND b->'sla'->>'pending_since_ms' IS NULL
             THEN (b->'sla'->>'resolution_due_ms')::bigint END)
    FROM (SELECT body::jsonb AS b) AS t
$$;
ALTER TABLE tickets ADD COLUMN next_due_ms bigint GENERATED ALWAYS AS (kefu_ticket_next_due(body)) STORED;
CREATE INDEX tickets_next_due ON tickets (next_due_ms, id) WHERE next_due_ms IS NOT NULL;
"#];

/// Taken (for the transaction) by whoever runs migrations, so nodes starting together apply
/// each migration once.
const MIGRATION_LOCK: i64 = 0x6b65_6675_6d69_67; // "kefumig"

/// Connections per node. Each request holds one for a query or a commit only.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection or the database before answering 503.
const WAIT: Duration = Duration::from_secs(2);

/// The channel nodes announce their notes on.
const CHANNEL: &str = "kefu";
/// Notes sent in one `pg_notify` statement, at most.
const NOTE_BATCH: usize = 256;
/// How long the listener waits before reconnecting after losing the database.
const RECONNECT: Duration = Duration::from_millis(500);

/// A pool of connections to one database. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Commit hints have nothing to batch here (PostgreSQL groups commits itself).
    announced: Arc<AtomicUsize>,
    /// Notes to and from the other nodes, once [`PgStore::connect`] started them.
    live: Option<Arc<Live>>,
}

/// The tasks that send this node's notes and listen for the others'.
struct Live {
    out: mpsc::UnboundedSender<String>,
    notes: broadcast::Sender<Arc<str>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        // The database's own message says what went wrong; the error's Display only "db error".
        let Some(db) = e.as_db_error() else {
            // No SQL state: the connection broke or never opened.
            return StoreError::Unavailable(format!("PostgreSQL: {e}"));
        };
        let (code, text) = (db.code().code(), format!("PostgreSQL {}: {}", db.code().code(), db.message()));
        // Class 08 (connection), 57P (shutting down, starting up) and 53 (out of resources)
        // pass; anything else is a failure.
        if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
            StoreError::Unavailable(text)
        } else {
            StoreError::Failed(text)
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(format!("no database connection: {other}")),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records always serialise")
}

fn decode<T: DeserializeOwned>(table: &str, row: &Row, column: usize) -> Result<T, StoreError> {
    let body: &str = row.get(column);
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt { key: format!("{table} row {:.60}", body), reason: e.to_string() })
}

fn status_name(s: &HandoffStatus) -> &'static str {
    match s {
        HandoffStatus::Queued => "queued",
        HandoffStatus::Assigned => "assigned",
        HandoffStatus::Resolved => "resolved",
        HandoffStatus::Returned => "returned",
    }
}

fn priority_rank(p: Priority) -> i16 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), runs the migrations not yet
    /// applied, and returns the store.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore::new(url)?;
        store.migrate().await?;
        store.index_history().await?;
        // Who sent a note: a node ignores its own (LISTEN hears them too).
        let node = crate::auth::new_id();
        let (out, outgoing) = mpsc::unbounded_channel();
        let (notes, _) = broadcast::channel(4096);
        let tasks = vec![
            tokio::spawn(send_notes(store.pool.clone(), node.clone(), outgoing)),
            tokio::spawn(listen(store.config.clone(), node, notes.clone())),
        ];
        store.live = Some(Arc::new(Live { out, notes, tasks }));
        Ok(store)
    }


    /// Summarises the conversations written before the history index existed (once: a
    /// record marks it done). A step that lands meanwhile keeps its own summary.
    async fn index_history(&self) -> Result<(), StoreError> {
        if self.record("history", "indexed").await?.is_some() {
            return Ok(());
        }
        let mut handoffs: std::collections::HashMap<String, Vec<Handoff>> = Default::default();
        for h in self.handoffs().await? {
            handoffs.entry(h.conversation.clone()).or_default().push(h);
        }
        let mut tickets: std::collections::HashMap<String, Ticket> = self.tickets().await?.into_iter().map(|t| (t.conversation.clone(), t)).collect();
        let mut ratings: std::collections::HashMap<String, Rating> = self.ratings().await?.into_iter().map(|r| (r.conversation.clone(), r)).collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for conv in self.conversations().await? {
            let stored = self.messages(&conv.id, 0, usize::MAX).await?;
            let change = Change {
                handoffs: handoffs.remove(&conv.id).unwrap_or_default(),
                ticket: tickets.remove(&conv.id),
                rating: ratings.remove(&conv.id),
                at_ms: conv.updated_ms,
                ..Default::default()
            };
            write_summary(&tx, &Summary::after(None, &conv, &change, &stored), false).await?;
        }
        tx.commit().await?;
        self.claim_record("history", "indexed", vec![1]).await?;
        Ok(())
    }

    /// The schema version this build brings.
    pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

    /// A pool for `url`, connecting only when first used and without migrating.
    pub fn new(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Failed(format!("the store URL {} is not a PostgreSQL URL: {e}", redact(url))))?;
        config.connect_timeout(WAIT);
        config.application_name("kefu");
        let manager = Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .build()
            .map_err(|e| StoreError::Failed(format!("the connection pool: {e}")))?;
        Ok(PgStore { pool, config, announced: Arc::new(AtomicUsize::new(0)), live: None })
    }

    /// Applies the migrations this build knows and the database has not seen; how many.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS kefu_migrations (version integer PRIMARY KEY, applied_ms bigint NOT NULL)").await?;
        let done: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM kefu_migrations", &[]).await?.get(0);
        if done as usize > MIGRATIONS.len() {
            return Err(StoreError::Failed(format!(
                "the database is at schema version {done}, newer than this build's {}: upgrade kefu",
                MIGRATIONS.len()
            )));
        }
        let mut applied = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await?;
            let version = i as i32 + 1;
            tx.execute("INSERT INTO kefu_migrations (version, applied_ms) VALUES ($1, $2)", &[&version, &i64_of(crate::service::now_ms())])
                .await?;
            applied += 1;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn one<T: DeserializeOwned>(&self, table: &str, sql: &str, key: &(dyn tokio_postgres::types::ToSql + Sync)) -> Result<Option<T>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client.query_opt(&stmt, &[key]).await?.map(|row| decode(table, &row, 0)).transpose()
    }

    async fn all<T: DeserializeOwned>(&self, table: &str, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<T>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client.query(&stmt, params).await?.iter().map(|row| decode(table, row, 0)).collect()
    }
}

impl PgStore {
    async fn report_rows(&self, range: &str, from: i64, until: i64) -> Result<Vec<HourCounts>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT hour, scope, counter, sum(n)::bigint FROM report_hours WHERE {range} GROUP BY hour, scope, counter \
             HAVING sum(n) <> 0 ORDER BY hour, scope COLLATE \"C\", counter COLLATE \"C\""
        );
        let stmt = client.prepare_cached(&sql).await?;
        let mut out: Vec<HourCounts> = Vec::new();
        for r in client.query(&stmt, &[&from, &until]).await? {
            let (hour, scope, counter, n) = (r.get::<_, i64>(0) as u64, r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, i64>(3));
            match out.last_mut() {
                Some(last) if last.hour == hour && last.scope == scope => {
                    last.counts.insert(counter, n);
                }
                _ => out.push(HourCounts { hour, scope, counts: [(counter, n)].into() }),
            }
        }
        Ok(out)
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        self.one("conversations", "SELECT body FROM conversations WHERE id = $1", &id).await
    }

    async fn messages(&self, conversation: &str, after: u64, limit: usize) -> Result<Vec<Message>, StoreError> {
        let (after, limit) = (i64_of(after), i64_of(limit as u64));
        self.all("messages", "SELECT body FROM messages WHERE conversation = $1 AND seq > $2 ORDER BY seq LIMIT $3", &[&conversation, &after, &limit])
            .await
    }

    async fn message_by_client_id(&self, conversation: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT body FROM messages WHERE conversation = $1 AND client_id = $2").await?;
        client.query_opt(&stmt, &[&conversation, &client_id]).await?.map(|row| decode("messages", &row, 0)).transpose()
    }

    async fn conversation_of_user(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT conversation FROM identities WHERE user_id = $1").await?;
        Ok(client.query_opt(&stmt, &[&user_id]).await?.map(|row| row.get(0)))
    }

    async fn handoff(&self, id: u64) -> Result<Option<Handoff>, StoreError> {
        self.one("handoffs", "SELECT body FROM handoffs WHERE id = $1", &i64_of(id)).await
    }

    async fn queue(&self) -> Result<Vec<Handoff>, StoreError> {
        self.all("handoffs", "SELECT body FROM handoffs WHERE status = 'queued' ORDER BY priority, created_ms, id", &[]).await
    }

    async fn queue_ahead(&self, h: &Handoff) -> Result<usize, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT count(*) FROM handoffs WHERE status = 'queued' AND (priority, created_ms, id) < ($1, $2, $3)")
            .await?;
        let n: i64 = client.query_one(&stmt, &[&priority_rank(h.priority), &i64_of(h.created_ms), &i64_of(h.id)]).await?.get(0);
        Ok(n as usize)
    }

    async fn queue_from(&self, h: &Handoff) -> Result<Vec<Handoff>, StoreError> {
        self.all(
            "handoffs",
            "SELECT body FROM handoffs WHERE status = 'queued' AND (priority, created_ms, id) >= ($1, $2, $3) ORDER BY priority, created_ms, id",
            &[&priority_rank(h.priority), &i64_of(h.created_ms), &i64_of(h.id)],
        )
        .await
    }

    async fn assigned(&self, agent: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        match agent {
            Some(a) => self.all("handoffs", "SELECT body FROM handoffs WHERE status = 'assigned' AND agent = $1 ORDER BY id", &[&a]).await,
            None => self.all("handoffs", "SELECT body FROM handoffs WHERE status = 'assigned' ORDER BY agent, id", &[]).await,
        }
    }

    async fn handoffs(&self) -> Result<Vec<Handoff>, StoreError> {
        self.all("handoffs", "SELECT body FROM handoffs ORDER BY id", &[]).await
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        self.one("agents", "SELECT body FROM agents WHERE id = $1", &id).await
    }

    async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.all("agents", "SELECT body FROM agents ORDER BY id", &[]).await
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.one("sessions", "SELECT body FROM sessions WHERE token_hash = $1", &token_hash).await
    }

    async fn tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.all("tickets", "SELECT body FROM tickets ORDER BY id", &[]).await
    }

    async fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError> {
        self.one("tickets", "SELECT body FROM tickets WHERE id = $1", &i64_of(id)).await
    }

    async fn tickets_due(&self, limit: usize) -> Result<Vec<(crate::dialogue::Millis, u64)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT next_due_ms, id FROM tickets WHERE next_due_ms IS NOT NULL ORDER BY next_due_ms, id LIMIT $1").await?;
        let rows = client.query(&stmt, &[&i64_of(limit as u64)]).await?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as crate::dialogue::Millis, r.get::<_, i64>(1) as u64)).collect())
    }

    async fn ratings(&self) -> Result<Vec<Rating>, StoreError> {
        self.all("ratings", "SELECT body FROM ratings ORDER BY conversation, which", &[]).await
    }

    async fn feedback(&self) -> Result<Vec<Feedback>, StoreError> {
        self.all("feedback", "SELECT body FROM feedback ORDER BY conversation, seq", &[]).await
    }

    async fn unanswered(&self, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT question, n FROM unanswered ORDER BY n DESC, question COLLATE \"C\" LIMIT $1").await?;
        let rows = client.query(&stmt, &[&i64_of(limit as u64)]).await?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
    }

    async fn counters(&self) -> Result<Counters, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT hour, n FROM message_hours ORDER BY hour").await?;
        let rows = client.query(&stmt, &[]).await?;
        Ok(Counters { messages_per_hour: rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)).collect() })
    }

    async fn report_hours(&self, from_hour: u64, until_hour: u64) -> Result<Vec<HourCounts>, StoreError> {
        let until_hour = until_hour.min(report::ALL_TIME);
        self.report_rows("hour >= $1 AND hour < $2", i64_of(from_hour), i64_of(until_hour)).await
    }

    async fn report_totals(&self) -> Result<Vec<HourCounts>, StoreError> {
        let all = i64_of(report::ALL_TIME);
        self.report_rows("hour >= $1 AND hour <= $2", all, all).await
    }

    async fn report_names(&self, kind: NameKind, from_hour: u64, until_hour: u64, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT name, sum(n)::bigint AS total FROM report_names \
                 WHERE ((kind = $1 AND hour >= $2 AND hour < $3) OR (kind = $4 AND hour >= $5 AND hour < $6) OR (kind = $1 AND hour >= $7 AND hour < $8)) \
                 AND ($9::text <> 'question' OR NOT EXISTS (SELECT 1 FROM report_answered a WHERE a.question = name)) \
                 GROUP BY name HAVING sum(n) > 0 ORDER BY total DESC, name COLLATE \"C\" LIMIT $10",
            )
            .await?;
        // At most three buckets: hours before the first whole day, the days, hours after.
        let (mut hours, mut days) = (Vec::new(), (0i64, 0i64));
        for (span, from, until) in report::name_buckets(from_hour, until_hour) {
            match span {
                Span::Hour => hours.push((i64_of(from), i64_of(until))),
                Span::Day => days = (i64_of(from), i64_of(until)),
            }
        }
        hours.resize(2, (0, 0));
        let (hour, day) = (kind.bucket_name(Span::Hour), kind.bucket_name(Span::Day));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] =
            [&hour, &hours[0].0, &hours[0].1, &day, &days.0, &days.1, &hours[1].0, &hours[1].1, &kind.as_str(), &i64_of(limit as u64)];
        let rows = client.query(&stmt, &params).await?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
    }

    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        self.all("conversations", "SELECT body FROM conversations ORDER BY id", &[]).await
    }

    async fn search_history(&self, q: &HistoryQuery) -> Result<Hits, StoreError> {
        let mut sql = String::from("SELECT body FROM conversation_history WHERE true");
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, value: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
            params.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(f) = q.from_ms {
            arg(&mut sql, " AND created_ms >= ?", Box::new(i64_of(f)));
        }
        if let Some(t) = q.to_ms {
            arg(&mut sql, " AND created_ms < ?", Box::new(i64_of(t)));
        }
        if let Some((ms, id)) = &q.before {
            arg(&mut sql, " AND (created_ms < ?", Box::new(i64_of(*ms)));
            arg(&mut sql, " OR (created_ms = ?", Box::new(i64_of(*ms)));
            arg(&mut sql, " AND id > ?))", Box::new(id.clone()));
        }
        if let Some(t) = &q.text {
            let terms = super::history::query_terms(t);
            if !terms.is_empty() {
                arg(&mut sql, " AND terms @> ?", Box::new(terms));
            }
            arg(&mut sql, " AND strpos(text, ?) > 0", Box::new(t.clone()));
        }
        if let Some(c) = &q.channel {
            arg(&mut sql, " AND channel = ?", Box::new(c.clone()));
        }
        if let Some(a) = &q.agent {
            arg(&mut sql, " AND ? = ANY(agents)", Box::new(a.clone()));
        }
        if let Some(v) = &q.visitor {
            arg(&mut sql, " AND (id = ?", Box::new(v.clone()));
            arg(&mut sql, " OR user_id = ?", Box::new(v.clone()));
            let pairs = super::history::query_terms(v);
            if !pairs.is_empty() {
                arg(&mut sql, " OR (visitor_terms @> ?", Box::new(pairs));
                arg(&mut sql, " AND strpos(coalesce(visitor_name, ''), ?) > 0))", Box::new(v.clone()));
            } else {
                arg(&mut sql, " OR strpos(coalesce(visitor_name, ''), ?) > 0)", Box::new(v.clone()));
            }
        }
        if let Some(o) = q.outcome {
            sql.push_str(match o {
                Outcome::BotAnswered => " AND bot_answered",
                Outcome::HandedOff => " AND handed_off",
                Outcome::Ticket => " AND ticket",
                Outcome::Rated => " AND rated",
            });
        }
        arg(&mut sql, " ORDER BY created_ms DESC, id LIMIT ?", Box::new(i64_of(q.limit as u64)));
        let client = self.pool.get().await?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        let rows = client.query(&sql, &refs).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let s: Summary = decode("conversation_history", row, 0)?;
            // The SQL says the same as `matches`; checked again so both backends agree exactly.
            if s.matches(q) {
                out.push(s);
            }
        }
        // The planner reads what it needs: no budget, never a partial page.
        Ok(Hits { summaries: out, stopped_at: None })
    }

    async fn summary(&self, conversation: &str) -> Result<Option<Summary>, StoreError> {
        self.one("conversation_history", "SELECT body FROM conversation_history WHERE id = $1", &conversation).await
    }

    async fn conversation_count(&self) -> Result<usize, StoreError> {
        let client = self.pool.get().await?;
        let n: i64 = client.query_one("SELECT count(*) FROM conversations", &[]).await?.get(0);
        Ok(n as usize)
    }

    fn announce(&self, note: String) {
        if let Some(live) = &self.live {
            let _ = live.out.send(note);
        }
    }

    fn notes(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        self.live.as_ref().map(|l| l.notes.subscribe())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT nextval('ids')").await?;
        let n: i64 = client.query_one(&stmt, &[]).await?.get(0);
        Ok(n as u64)
    }

    fn commit(&self, change: Change) -> Committed {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let stored = apply(&tx, &change).await?;
            tx.commit().await?;
            Ok(stored)
        })
    }

    fn expect_commit(&self) -> CommitHint {
        CommitHint::new(self.announced.clone())
    }

    fn durable(&self) -> Durable {
        // Every write here is a committed transaction, durable when it returned.
        Box::pin(async { Ok(()) })
    }

    async fn record(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT value FROM records WHERE space = $1 AND key = $2").await?;
        Ok(client.query_opt(&stmt, &[&space, &key.as_bytes()]).await?.map(|r| r.get(0)))
    }

    async fn set_record(&self, space: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match value {
            Some(v) => {
                let stmt = client
                    .prepare_cached("INSERT INTO records (space, key, value) VALUES ($1, $2, $3) ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value")
                    .await?;
                client.execute(&stmt, &[&space, &key.as_bytes(), &v]).await?;
            }
            None => {
                let stmt = client.prepare_cached("DELETE FROM records WHERE space = $1 AND key = $2").await?;
                client.execute(&stmt, &[&space, &key.as_bytes()]).await?;
            }
        }
        Ok(())
    }

    async fn claim_record(&self, space: &str, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("INSERT INTO records (space, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").await?;
        Ok(client.execute(&stmt, &[&space, &key.as_bytes(), &value]).await? == 1)
    }

    async fn update_record(&self, space: &str, key: &str, update: Update<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A row lock cannot hold a key that has no row yet: lock the key itself.
        let k = key.as_bytes();
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || encode($2, 'hex'), 0))", &[&space, &k]).await?;
        let old: Option<Vec<u8>> = tx.query_opt("SELECT value FROM records WHERE space = $1 AND key = $2", &[&space, &k]).await?.map(|r| r.get(0));
        let new = update(old.as_deref())?;
        match &new {
            Some(v) => {
                tx.execute(
                    "INSERT INTO records (space, key, value) VALUES ($1, $2, $3) ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&space, &k, v],
                )
                .await?
            }
            None => tx.execute("DELETE FROM records WHERE space = $1 AND key = $2", &[&space, &k]).await?,
        };
        tx.commit().await?;
        Ok(new)
    }

    async fn records(&self, space: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT key, value FROM records WHERE space = $1 AND substring(key FROM 1 FOR octet_length($2::bytea)) = $2::bytea ORDER BY key")
            .await?;
        record_pairs(space, &client.query(&stmt, &[&space, &prefix.as_bytes()]).await?)
    }

    async fn first_records(&self, space: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT key, value FROM records WHERE space = $1 ORDER BY key LIMIT $2").await?;
        record_pairs(space, &client.query(&stmt, &[&space, &i64_of(limit as u64)]).await?)
    }
}

/// (key, value) rows of a records query, keys as the UTF-8 they were written as.
fn record_pairs(space: &str, rows: &[tokio_postgres::Row]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    rows.iter()
        .map(|r| {
            let key: Vec<u8> = r.get(0);
            let key = String::from_utf8(key).map_err(|e| StoreError::Corrupt { key: format!("{space}/{:?}", e.as_bytes()), reason: "the key is not UTF-8".into() })?;
            Ok((key, r.get(1)))
        })
        .collect()
}

/// Sends this node's notes, many to a statement: a note is sent after its commit, and a
/// failure drops the batch (notes are best effort; the data is in the store).
async fn send_notes(pool: Pool, node: String, mut outgoing: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = outgoing.recv().await {
        let mut batch = vec![format!("{node} {first}")];
        while batch.len() < NOTE_BATCH {
            match outgoing.try_recv() {
                Ok(n) => batch.push(format!("{node} {n}")),
                Err(_) => break,
            }
        }
        let sent = async {
            let client = pool.get().await?;
            let stmt = client.prepare_cached("SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n").await?;
            client.execute(&stmt, &[&CHANNEL, &batch]).await?;
            Ok::<_, StoreError>(())
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, notes = batch.len(), "notes to the other nodes were lost");
        }
    }
}

/// Listens for the other nodes' notes on a connection of its own, reconnecting after a
/// loss; after a reconnection it hands on [`super::RESYNC`].
async fn listen(config: tokio_postgres::Config, node: String, notes: broadcast::Sender<Arc<str>>) {
    use futures_util::StreamExt;
    let mut connected_before = false;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                // The connection is driven here; its notifications come out of it.
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(m)) = messages.next().await {
                        if let tokio_postgres::AsyncMessage::Notification(n) = m {
                            if tx.send(n.payload().to_string()).is_err() {
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        if connected_before {
                            let _ = notes.send(super::RESYNC.into());
                        }
                        connected_before = true;
                        while let Some(payload) = rx.recv().await {
                            match payload.split_once(' ') {
                                Some((from, note)) if from != node => {
                                    let _ = notes.send(note.into());
                                }
                                _ => {}
                            }
                        }
                        tracing::warn!("lost the database connection that hears the other nodes; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %StoreError::from(e), "cannot listen for the other nodes' notes"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %StoreError::from(e), "cannot connect to hear the other nodes; retrying"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Writes one change inside `tx`; the caller commits.
/// Stores a summary with the columns the search filters on; `replace`: over an existing one.
/// The summary upsert: `replace` for a step, not for indexing an older store.
fn summary_sql(replace: bool) -> String {
    format!(
        "INSERT INTO conversation_history (id, created_ms, channel, user_id, visitor_name, agents, bot_answered, handed_off, ticket, rated, text, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO {}",
        if replace {
            "UPDATE SET user_id = EXCLUDED.user_id, visitor_name = EXCLUDED.visitor_name, agents = EXCLUDED.agents, \
             bot_answered = EXCLUDED.bot_answered, handed_off = EXCLUDED.handed_off, ticket = EXCLUDED.ticket, \
             rated = EXCLUDED.rated, text = EXCLUDED.text, body = EXCLUDED.body"
        } else {
            "NOTHING"
        }
    )
}

async fn write_summary(tx: &Transaction<'_>, s: &Summary, replace: bool) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached(&summary_sql(replace)).await?;
    tx.execute(
        &stmt,
        &[&s.id, &i64_of(s.created_ms), &s.channel, &s.user_id, &s.visitor_name, &s.agents, &s.bot_answered, &s.handed_off, &s.ticket, &s.rating.is_some(), &s.text, &encode(s)],
    )
    .await?;
    Ok(())
}

/// One round trip's statements: tokio-postgres pipelines the requests of futures polled
/// together, so a step waits for four round trips (BEGIN, its reads, its writes, COMMIT)
/// instead of one per statement. They are sent, and take their locks, in the order pushed.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

const UPDATE_CONVERSATION: &str = "UPDATE conversations SET last_seq = $2, updated_ms = $3, body = $4 WHERE id = $1 AND last_seq = $5";
const INSERT_CONVERSATION: &str = "INSERT INTO conversations (id, last_seq, updated_ms, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const READ_SUMMARY: &str = "SELECT body FROM conversation_history WHERE id = $1";
const READ_MARKS: &str = "SELECT conversation, body FROM report_marks WHERE conversation = ANY($1) ORDER BY conversation FOR UPDATE";
const READ_HANDOFFS: &str = "SELECT body FROM handoffs WHERE id = ANY($1) ORDER BY id FOR UPDATE";
const READ_TICKET: &str = "SELECT body FROM tickets WHERE id = $1 FOR UPDATE";
const READ_RATING: &str = "SELECT body FROM ratings WHERE conversation = $1 AND which = $2 FOR UPDATE";
const READ_FEEDBACK: &str = "SELECT body FROM feedback WHERE conversation = $1 AND seq = $2 FOR UPDATE";
const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation, seq, client_id, body) VALUES ($1, $2, $3, $4)";
const BUMP_MESSAGE_HOUR: &str = "INSERT INTO message_hours (hour, n) VALUES ($1, $2) ON CONFLICT (hour) DO UPDATE SET n = message_hours.n + EXCLUDED.n";
const UPSERT_HANDOFF: &str = "INSERT INTO handoffs (id, status, agent, priority, created_ms, body) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, agent = EXCLUDED.agent, priority = EXCLUDED.priority, \
     created_ms = EXCLUDED.created_ms, body = EXCLUDED.body";
const UPSERT_TICKET: &str = "INSERT INTO tickets (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body";
const UPSERT_RATING: &str =
    "INSERT INTO ratings (conversation, which, body) VALUES ($1, $2, $3) ON CONFLICT (conversation, which) DO UPDATE SET body = EXCLUDED.body";
const UPSERT_FEEDBACK: &str =
    "INSERT INTO feedback (conversation, seq, body) VALUES ($1, $2, $3) ON CONFLICT (conversation, seq) DO UPDATE SET body = EXCLUDED.body";
const UPSERT_AGENT: &str = "INSERT INTO agents (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body";
const UPSERT_SESSION: &str = "INSERT INTO sessions (token_hash, body) VALUES ($1, $2) ON CONFLICT (token_hash) DO UPDATE SET body = EXCLUDED.body";
const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";
const UPSERT_IDENTITY: &str =
    "INSERT INTO identities (user_id, conversation) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET conversation = EXCLUDED.conversation";
const BUMP_UNANSWERED: &str = "INSERT INTO unanswered (question, n) VALUES ($1, 1) ON CONFLICT (question) DO UPDATE SET n = unanswered.n + 1";
const UPSERT_MARKS: &str = "INSERT INTO report_marks (conversation, body) VALUES ($1, $2) ON CONFLICT (conversation) DO UPDATE SET body = EXCLUDED.body";
// One statement for all of a step's counters, in key order (concurrent writers lock rows in
// the same order, so they cannot deadlock on them).
const ADD_COUNTERS: &str = "INSERT INTO report_hours (hour, scope, counter, shard, n) \
     SELECT h, s, c, $4, n FROM unnest($1::bigint[], $2::text[], $3::text[], $5::bigint[]) AS u(h, s, c, n) \
     ON CONFLICT (hour, scope, counter, shard) DO UPDATE SET n = report_hours.n + EXCLUDED.n";
const ADD_NAMED: &str = "INSERT INTO report_names (kind, hour, name, shard, n) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (kind, hour, name, shard) DO UPDATE SET n = report_names.n + EXCLUDED.n";
const UPSERT_RECORD: &str = "INSERT INTO records (space, key, value) VALUES ($1, $2, $3) ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE_RECORD: &str = "DELETE FROM records WHERE space = $1 AND key = $2";
const UNANSWERED_AGAIN: &str = "DELETE FROM report_answered WHERE question = $1";
// Only a question on the list leaves it (and is remembered as answered).
const ANSWERED: &str = "WITH gone AS (DELETE FROM unanswered WHERE question = $1 RETURNING 1) \
     INSERT INTO report_answered (question, at_ms) SELECT $1::text, $2::bigint WHERE EXISTS (SELECT 1 FROM gone) \
     ON CONFLICT (question) DO UPDATE SET at_ms = EXCLUDED.at_ms";

/// Prepares the statements of one round trip (or finds them cached on this connection)
/// before any of them runs, so that they are sent in the order written.
async fn prepared<const N: usize>(tx: &Transaction<'_>, sqls: [&str; N]) -> Result<[Statement; N], StoreError> {
    let statements = futures_util::future::try_join_all(sqls.iter().map(|sql| tx.prepare_cached(sql))).await?;
    Ok(statements.try_into().unwrap_or_else(|_| unreachable!("one statement per query")))
}

fn rating_key(r: &Rating) -> String {
    r.handoff.map_or_else(|| r.at_ms.to_string(), |h| format!("handoff-{h}"))
}

async fn apply(tx: &Transaction<'_>, change: &Change) -> Result<Vec<Message>, StoreError> {
    let [update, read_summary, read_marks, read_handoffs, read_ticket, read_rating, read_feedback] =
        prepared(tx, [UPDATE_CONVERSATION, READ_SUMMARY, READ_MARKS, READ_HANDOFFS, READ_TICKET, READ_RATING, READ_FEEDBACK]).await?;
    let mut stored = Vec::with_capacity(change.messages.len());
    let next = change.conversation.as_ref().map(|conv| {
        let mut conv = conv.clone();
        let read_seq = i64_of(conv.last_seq);
        stored.extend(change.number(&mut conv));
        conv.updated_ms = change.at_ms;
        let body = encode(&conv);
        (conv, read_seq, body)
    });

    // Round trip 1: what the report derivation compares with (locked until the transaction
    // ends, so another node's step cannot count the same transition), the conversation's
    // summary, and the conditional update of the conversation.
    let touched: Vec<String> = report::touched(change).into_iter().collect();
    let handoff_ids: Vec<i64> = change.handoffs.iter().map(|h| i64_of(h.id)).collect();
    let rating_which = change.rating.as_ref().map(rating_key);
    let (marks, handoffs, ticket, rating, feedback, moved, summary) = futures_util::try_join!(
        async { if touched.is_empty() { Ok(Vec::new()) } else { tx.query(&read_marks, &[&touched]).await } },
        async { if handoff_ids.is_empty() { Ok(Vec::new()) } else { tx.query(&read_handoffs, &[&handoff_ids]).await } },
        async {
            match &change.ticket {
                Some(t) => tx.query_opt(&read_ticket, &[&i64_of(t.id)]).await,
                None => Ok(None),
            }
        },
        async {
            match (&change.rating, &rating_which) {
                (Some(r), Some(which)) => tx.query_opt(&read_rating, &[&r.conversation, which]).await,
                _ => Ok(None),
            }
        },
        async {
            match &change.feedback {
                Some(f) => tx.query_opt(&read_feedback, &[&f.conversation, &i64_of(f.seq)]).await,
                None => Ok(None),
            }
        },
        // Moves the conversation on only from the sequence number the step read: another
        // node's step in between leaves no row to update, and the insert then finds the row.
        async {
            match &next {
                Some((conv, read_seq, body)) => {
                    tx.execute(&update, &[&conv.id, &i64_of(conv.last_seq), &i64_of(conv.updated_ms), body, read_seq]).await.map(|n| n > 0)
                }
                None => Ok(true),
            }
        },
        async {
            match &next {
                Some((conv, ..)) => tx.query_opt(&read_summary, &[&conv.id]).await,
                None => Ok(None),
            }
        },
    )?;
    let mut before = Before::default();
    for row in &marks {
        before.marks.insert(row.get(0), decode::<Marks>("report_marks", row, 1)?);
    }
    for row in &handoffs {
        let h: Handoff = decode("handoffs", row, 0)?;
        before.handoffs.insert(h.id, h);
    }
    before.ticket = ticket.map(|row| decode("tickets", &row, 0)).transpose()?;
    if let Some(t) = &change.ticket {
        if !report::ticket_follows(t, before.ticket.as_ref()) {
            return Err(StoreError::TicketChanged(t.id));
        }
    }
    before.rating = rating.map(|row| decode("ratings", &row, 0)).transpose()?;
    before.feedback = feedback.map(|row| decode("feedback", &row, 0)).transpose()?;
    if let (Some((conv, _, body)), false) = (&next, moved) {
        let insert = tx.prepare_cached(INSERT_CONVERSATION).await?;
        if tx.execute(&insert, &[&conv.id, &i64_of(conv.last_seq), &i64_of(conv.updated_ms), body]).await? == 0 {
            return Err(StoreError::Conflict(conv.id.clone()));
        }
    }

    // Round trip 2: every write. The values the statements borrow are made first.
    let [insert_message, bump_hour, upsert_summary, upsert_handoff, upsert_ticket, upsert_rating, upsert_feedback, upsert_agent, upsert_session, delete_session, upsert_identity, bump_unanswered, upsert_marks, add_counters, add_named, unanswered_again, answered, upsert_record, delete_record] =
        prepared(
            tx,
            [
                INSERT_MESSAGE, BUMP_MESSAGE_HOUR, &summary_sql(true), UPSERT_HANDOFF, UPSERT_TICKET, UPSERT_RATING, UPSERT_FEEDBACK, UPSERT_AGENT,
                UPSERT_SESSION, DELETE_SESSION, UPSERT_IDENTITY, BUMP_UNANSWERED, UPSERT_MARKS, ADD_COUNTERS, ADD_NAMED, UNANSWERED_AGAIN, ANSWERED, UPSERT_RECORD, DELETE_RECORD,
            ],
        )
        .await?;
    let messages: Vec<(i64, String)> = stored.iter().map(|m| (i64_of(m.seq), encode(m))).collect();
    // The visitor's messages of the step, counted in its hour.
    let visitor_messages = stored.iter().filter(|m| m.from == Sender::Visitor).count() as i64;
    let hours: Vec<(i64, i64)> = if visitor_messages > 0 { vec![(i64_of(change.at_ms / 3_600_000), visitor_messages)] } else { vec![] };
    let summary = next.as_ref().map(|(conv, ..)| {
        let previous = summary.and_then(|row| decode::<Summary>("conversation_history", &row, 0).ok());
        let s = Summary::after(previous, conv, change, &stored);
        let body = encode(&s);
        (s, body)
    });
    let handoff_rows: Vec<(i64, i16, i64, String)> =
        change.handoffs.iter().map(|h| (i64_of(h.id), priority_rank(h.priority), i64_of(h.created_ms), encode(h))).collect();
    let ticket = change.ticket.as_ref().map(|t| (i64_of(t.id), encode(t)));
    let rating = change.rating.as_ref().map(encode);
    let feedback = change.feedback.as_ref().map(|f| (i64_of(f.seq), encode(f)));
    let agent = change.agent.as_ref().map(encode);
    let session = change.session.as_ref().map(|(hash, s)| (hash, s.as_ref().map(encode)));
    let (tally, new_marks) = report::derive(change, &before);
    let new_marks: Vec<(&String, String)> = new_marks.iter().map(|(id, m)| (id, encode(m))).collect();
    let shard = shard(change);
    let (mut counter_hours, mut scopes, mut names, mut ns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((hour, scope), counts) in tally.rows() {
        for (c, n) in counts {
            counter_hours.push(i64_of(hour));
            scopes.push(scope.clone());
            names.push(c);
            ns.push(n);
        }
    }
    let named: Vec<(&str, i64, &str, i64)> =
        tally.name_rows().into_iter().map(|((kind, span, hour, name), n)| (kind.bucket_name(span), i64_of(hour), name, n)).collect();
    let at_ms = i64_of(change.at_ms);

    let summary_row = summary.as_ref().map(|(s, body)| (s, i64_of(s.created_ms), s.rating.is_some(), body));

    // Each statement borrows what it writes; `async move` keeps its parameter list alive.
    let mut writes: Vec<Pending<'_>> = Vec::new();
    let (insert_message, bump_hour, upsert_handoff, add_named, bump_unanswered) = (&insert_message, &bump_hour, &upsert_handoff, &add_named, &bump_unanswered);
    let (upsert_marks, unanswered_again, answered) = (&upsert_marks, &unanswered_again, &answered);
    if let Some((conv, ..)) = &next {
        for ((seq, body), m) in messages.iter().zip(&stored) {
            writes.push(Box::pin(async move { tx.execute(insert_message, &[&conv.id, seq, &m.client_id, body]).await }));
        }
        for (hour, n) in &hours {
            writes.push(Box::pin(async move { tx.execute(bump_hour, &[hour, n]).await }));
        }
    }
    if let Some((s, created_ms, rated, body)) = &summary_row {
        let stmt = &upsert_summary;
        writes.push(Box::pin(async move {
            tx.execute(stmt, &[&s.id, created_ms, &s.channel, &s.user_id, &s.visitor_name, &s.agents, &s.bot_answered, &s.handed_off, &s.ticket, rated, &s.text, *body])
                .await
        }));
    }
    for ((id, priority, created_ms, body), h) in handoff_rows.iter().zip(&change.handoffs) {
        writes.push(Box::pin(async move { tx.execute(upsert_handoff, &[id, &status_name(&h.status), &h.agent, priority, created_ms, body]).await }));
    }
    if let Some((id, body)) = &ticket {
        let stmt = &upsert_ticket;
        writes.push(Box::pin(async move { tx.execute(stmt, &[id, body]).await }));
    }
    if let (Some(r), Some(body), Some(which)) = (&change.rating, &rating, &rating_which) {
        // One rating per resolution: a second one for the same handoff replaces it.
        let stmt = &upsert_rating;
        writes.push(Box::pin(async move { tx.execute(stmt, &[&r.conversation, which, body]).await }));
    }
    if let (Some(f), Some((seq, body))) = (&change.feedback, &feedback) {
        let stmt = &upsert_feedback;
        writes.push(Box::pin(async move { tx.execute(stmt, &[&f.conversation, seq, body]).await }));
    }
    if let (Some(a), Some(body)) = (&change.agent, &agent) {
        let stmt = &upsert_agent;
        writes.push(Box::pin(async move { tx.execute(stmt, &[&a.id, body]).await }));
    }
    match &session {
        Some((hash, Some(body))) => {
            let stmt = &upsert_session;
            writes.push(Box::pin(async move { tx.execute(stmt, &[*hash, body]).await }));
        }
        Some((hash, None)) => {
            let stmt = &delete_session;
            writes.push(Box::pin(async move { tx.execute(stmt, &[*hash]).await }));
        }
        None => {}
    }
    if let Some((user, conv)) = &change.identity {
        let stmt = &upsert_identity;
        writes.push(Box::pin(async move { tx.execute(stmt, &[user, conv]).await }));
    }
    for q in &change.unanswered {
        writes.push(Box::pin(async move { tx.execute(bump_unanswered, &[q]).await }));
    }
    // The report's counters and marks (see [`report::derive`]).
    for (id, body) in &new_marks {
        writes.push(Box::pin(async move { tx.execute(upsert_marks, &[*id, body]).await }));
    }
    if !counter_hours.is_empty() {
        let stmt = &add_counters;
        let (counter_hours, scopes, names, ns, shard) = (&counter_hours, &scopes, &names, &ns, &shard);
        writes.push(Box::pin(async move { tx.execute(stmt, &[counter_hours, scopes, names, shard, ns]).await }));
    }
    for (kind, hour, name, n) in &named {
        let shard = &shard;
        writes.push(Box::pin(async move { tx.execute(add_named, &[kind, hour, name, shard, n]).await }));
    }
    for q in &tally.unanswered {
        writes.push(Box::pin(async move { tx.execute(unanswered_again, &[q]).await }));
    }
    for q in &tally.answered {
        let at_ms = &at_ms;
        writes.push(Box::pin(async move { tx.execute(answered, &[q, at_ms]).await }));
    }
    // Records of the step's own (the webhook outbox).
    let (upsert_record, delete_record) = (&upsert_record, &delete_record);
    for r in &change.records {
        let key = r.key.as_bytes();
        match &r.value {
            Some(v) => writes.push(Box::pin(async move { tx.execute(upsert_record, &[&r.space, &key, v]).await })),
            None => writes.push(Box::pin(async move { tx.execute(delete_record, &[&r.space, &key]).await })),
        }
    }
    futures_util::future::try_join_all(writes).await?;
    Ok(stored)
}

/// Which counter shard a change adds to: one per conversation, so one conversation's steps
/// meet on the same rows and different conversations mostly do not.
fn shard(change: &Change) -> i16 {
    const SHARDS: u32 = 8;
    let key = report::touched(change).into_iter().next().unwrap_or_default();
    (key.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % SHARDS) as i16
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(super::redact("postgres://kefu:s3cret@db:5432/kefu"), "postgres://kefu@db:5432/kefu");
        assert_eq!(super::redact("postgres://kefu@db/kefu"), "postgres://kefu@db/kefu");
        assert_eq!(super::redact("host=db user=kefu"), "host=db user=kefu");
    }
}

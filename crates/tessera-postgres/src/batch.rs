//! Validation reads that arrive together share one query.
//!
//! Each `get` is one indexed read, and on a busy node most of PostgreSQL's
//! cost per read is the statement round itself (parse of the bind, the
//! executor's start-up, the protocol), not the row. So concurrent `get`s
//! are coalesced: a few reader tasks each take the oldest waiting request
//! and every other one already queued (up to [`MAX_BATCH`]), send one
//! `SELECT … WHERE id = ANY($1)`, and answer each waiter from the rows. A
//! request that finds a reader idle is sent at once: coalescing never
//! waits for company, it only shares a round trip that was going to happen
//! anyway. Each waiter filters the rows by its own `now`, so no caller is
//! ever handed a record that expired by its clock.
//!
//! The readers hold the pool and the statement text, not the store: when
//! the store is dropped the queue closes and they end.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tessera::StoreError;
use tessera::ids::SessionId;
use tessera::store::StoredSession;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{big, pool_error, session};

/// The most reads one query answers.
pub(crate) const MAX_BATCH: usize = 128;

type Answer = Result<Option<StoredSession>, StoreError>;

struct Waiter {
    id: SessionId,
    now: u64,
    reply: oneshot::Sender<Answer>,
}

/// The queue of waiting reads.
#[derive(Clone)]
pub(crate) struct Reads {
    queue: mpsc::UnboundedSender<Waiter>,
}

impl Reads {
    /// Starts `readers` reader tasks over `pool`, running `sql` (which
    /// takes `$1 uuid[]` and `$2` the oldest `now`).
    pub(crate) fn start(pool: Pool, sql: String, readers: usize) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let sql: Arc<str> = sql.into();
        for _ in 0..readers.max(1) {
            tokio::spawn(reader(pool.clone(), sql.clone(), rx.clone()));
        }
        Self { queue }
    }

    /// The live session with this id, read together with whatever other
    /// reads are waiting.
    pub(crate) async fn get(&self, id: SessionId, now: u64) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiter { id, now, reply })
            .map_err(|_| StoreError::new("the PostgreSQL readers have stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::new("a PostgreSQL read was abandoned"))?
    }
}

async fn reader(pool: Pool, sql: Arc<str>, rx: Arc<Mutex<mpsc::UnboundedReceiver<Waiter>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
        }
        // Waiters that gave up (a timeout) need no answer.
        batch.retain(|w| !w.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        answer(&pool, &sql, batch).await;
    }
}

async fn answer(pool: &Pool, sql: &str, batch: Vec<Waiter>) {
    let ids: Vec<uuid::Uuid> = batch.iter().map(|w| *w.id.as_uuid()).collect();
    let oldest = batch.iter().map(|w| w.now).min().unwrap_or(0);
    let rows = async {
        let client = pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| StoreError::with_source("a PostgreSQL statement failed", e))?;
        client
            .query(&statement, &[&ids, &big(oldest)])
            .await
            .map_err(|e| StoreError::with_source("a PostgreSQL statement failed", e))
    }
    .await;
    match rows {
        Ok(rows) => {
            let mut found: HashMap<SessionId, Result<StoredSession, String>> = HashMap::new();
            for row in &rows {
                match session(row) {
                    Ok(s) => {
                        found.insert(s.id, Ok(s));
                    }
                    Err(e) => {
                        // A row that does not decode fails only its own
                        // waiters (its id is the first column).
                        if let Ok(id) = row.try_get::<_, uuid::Uuid>(0) {
                            found.insert(SessionId::from_uuid(id), Err(e.to_string()));
                        }
                    }
                }
            }
            for w in batch {
                let answer = match found.get(&w.id) {
                    Some(Ok(s)) => Ok(Some(s.clone()).filter(|s| s.expires_at > w.now)),
                    Some(Err(_)) => Err(crate::store::malformed()),
                    None => Ok(None),
                };
                let _ = w.reply.send(answer);
            }
        }
        Err(e) => {
            // The first waiter gets the cause; the others the same message.
            let mut waiters = batch.into_iter();
            let shown = e.to_string();
            if let Some(first) = waiters.next() {
                let _ = first.reply.send(Err(e));
            }
            for w in waiters {
                let _ = w.reply.send(Err(StoreError::new(shown.clone())));
            }
        }
    }
}

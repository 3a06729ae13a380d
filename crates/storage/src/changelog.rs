//! The per-space change log: how replicas sharing one store learn each other's writes.
//!
//! Every change to a space's versions is committed in its record first, then announced by
//! an entry of the space's log, `log/{space}/{generation}/{seq}`. Sequence numbers start at
//! 1 and have no gaps: an entry is claimed with create-if-absent at the number after the
//! last one its writer knows, and a writer that loses the race lists what came after and
//! tries the next. A reader that has applied the log up to `n` learns every later change
//! with one listing `start-after` entry `n`, and reads the records those entries name (an
//! entry names versions, never their content, so entries landing out of commit order
//! still leave every reader with what the store holds).
//!
//! Deleting a space appends a final entry (`deleted`): nothing is appended after it, and a
//! writer that finds it knows the space it wrote into is gone.
//!
//! Concurrent appends of one process to one space are grouped: whoever holds the space's
//! append lock writes every change waiting at that moment as one entry, so a busy replica
//! writes one entry per round trip, not one per upload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chartyard_core::RegistryError;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::gateway::{Created, Gateway, ObjectVersion, Replaced, to_json};
use crate::index::Checkpoint;
use crate::keys::{StorageKey, parse_checkpoint, parse_log_entry};
use crate::spaces::new_generation;
use object_store::ObjectMeta;

type Result<T> = std::result::Result<T, RegistryError>;

/// A version whose record changed (created, replaced, rewritten or deleted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Change {
    pub chart: String,
    pub version: String,
}

/// One entry of a space's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    /// Unique per write: tells a retried write that found "already exists" whether what
    /// is there is its own.
    pub id: String,
    /// The process that wrote it, for whoever reads the log.
    pub writer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The space (this generation of it) was deleted; the log ends here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// What an append asks for.
enum Append {
    Change(Change),
    Deleted,
}

/// The appends of this process to one generation of one space.
#[derive(Default)]
struct SpaceAppender {
    /// Appends waiting to be written, each with where to send its sequence number.
    waiting: Mutex<Vec<(Append, oneshot::Sender<Result<Appended>>)>>,
    /// Held by the one task writing an entry.
    state: tokio::sync::Mutex<AppendState>,
}

#[derive(Default)]
struct AppendState {
    /// The number to try next (0: unknown).
    next: u64,
    /// When `next` was learnt; knowledge older than [`KNOWLEDGE_TTL`] is dropped.
    learnt: Option<Instant>,
    /// The log is known to have ended.
    ended: bool,
}

/// How long what a process knows of a log's end is used to pick the next number. Older
/// knowledge is read again: gc removes entries older than [`MIN_LOG_GRACE`] at or below a
/// checkpoint, and a number is only safe to claim while every entry after the last one
/// known is younger than that (create-if-absent would succeed on a removed number).
pub(crate) const KNOWLEDGE_TTL: Duration = Duration::from_secs(30);

/// gc never removes log entries younger than this, whatever its grace period.
pub(crate) const MIN_LOG_GRACE: Duration = Duration::from_secs(600);

/// How long a process remembers the entries it wrote.
const WRITTEN_MEMORY: Duration = Duration::from_secs(10);

/// How many spaces' append states a process keeps.
const MAX_APPENDERS: usize = 4096;

/// Every space's change log.
pub(crate) struct ChangeLog {
    gateway: Gateway,
    /// Names this process in the entries it writes, so that it can tell its own.
    writer: String,
    appenders: Mutex<HashMap<(String, String), Arc<SpaceAppender>>>,
    /// The entries this process wrote lately, with when.
    written: Mutex<HashMap<(String, String, u64), Instant>>,
}

/// Where an append landed: the entry's number, and how many changes the entry holds
/// (appends of one process may share an entry).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub seq: u64,
    pub changes: usize,
}

/// What an append found: the space was deleted (its log has ended) before the change
/// could be announced.
pub(crate) const SPACE_GONE: &str = "space deleted";

impl ChangeLog {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway, writer: new_generation(), appenders: Mutex::default(), written: Mutex::default() }
    }

    fn appender(&self, space: &str, generation: &str) -> Arc<SpaceAppender> {
        let mut appenders = self.appenders.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: those no append holds are forgotten in one go (their knowledge of
        // where their log goes on is read again when needed).
        if appenders.len() >= MAX_APPENDERS {
            appenders.retain(|_, appender| Arc::strong_count(appender) > 1);
        }
        appenders.entry((space.to_string(), generation.to_string())).or_default().clone()
    }

    /// Announces a changed version; answers the sequence number of the entry holding it.
    /// Fails with `NotFound(SPACE_GONE)` when the log has ended (the space was deleted).
    /// `known` is the last number the caller saw in the log (0: none) less than
    /// [`KNOWLEDGE_TTL`] ago, a hint for where to try first; without it the log is listed.
    pub async fn append(&self, space: &str, generation: &str, change: Change, known: Option<u64>) -> Result<Appended> {
        self.submit(space, generation, Append::Change(change), known).await
    }

    /// Ends a space's log: its generation is deleted. Answers the final entry's number.
    pub async fn end(&self, space: &str, generation: &str, known: Option<u64>) -> Result<Appended> {
        self.submit(space, generation, Append::Deleted, known).await
    }

    async fn submit(&self, space: &str, generation: &str, append: Append, known: Option<u64>) -> Result<Appended> {
        let appender = self.appender(space, generation);
        let (sender, answer) = oneshot::channel();
        appender.waiting.lock().unwrap_or_else(|e| e.into_inner()).push((append, sender));
        {
            let mut state = appender.state.lock().await;
            // Whoever held the lock before us may have written ours already.
            let batch = std::mem::take(&mut *appender.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                if state.learnt.is_none_or(|learnt| learnt.elapsed() >= KNOWLEDGE_TTL) {
                    state.next = 0;
                }
                // Never a guess: a number below entries that gc removed would be free again.
                if let Some(known) = known
                    && state.next <= known
                {
                    state.next = known + 1;
                }
                let (appends, senders): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let result = match state.ended {
                    true => Err(RegistryError::not_found(SPACE_GONE)),
                    false => self.write(space, generation, &mut state, appends).await,
                };
                for sender in senders {
                    let _ = sender.send(result.clone());
                }
            }
        }
        answer.await.map_err(|_| RegistryError::internal("change log append dropped"))?
    }

    /// Writes one entry holding `appends` at the first free number from `next` on.
    async fn write(
        &self,
        space: &str,
        generation: &str,
        state: &mut AppendState,
        appends: Vec<Append>,
    ) -> Result<Appended> {
        let mut entry =
            LogEntry { id: new_generation(), writer: self.writer.clone(), changes: Vec::new(), deleted: false };
        for append in appends {
            match append {
                Append::Change(change) if !entry.changes.contains(&change) => entry.changes.push(change),
                Append::Change(_) => {}
                Append::Deleted => entry.deleted = true,
            }
        }
        let gone = |state: &mut AppendState| {
            state.ended = true;
            Err(RegistryError::not_found(SPACE_GONE))
        };
        if state.next == 0 {
            match self.last(space, generation, 0).await? {
                Some((_, true)) => return gone(state),
                last => state.next = last.map_or(1, |(seq, _)| seq + 1),
            }
        }
        // Each lost race moves past at least one entry someone else wrote, so this ends; the
        // bound only keeps a store that answers nonsense from holding us forever.
        for _ in 0..1000 {
            let key = StorageKey::LogEntry { space, generation, seq: state.next };
            match self.gateway.create_json(key, &entry).await? {
                Created::Created(_) => {}
                Created::Exists => {
                    let there: Option<LogEntry> = self.gateway.get_json(key).await?;
                    let ours = there.as_ref().is_some_and(|there| there.id == entry.id);
                    if !ours {
                        // Another writer's entry: if it or a later one ends the log, the
                        // space is gone; else try after the last one.
                        if there.is_some_and(|there| there.deleted) {
                            return gone(state);
                        }
                        match self.last(space, generation, state.next).await? {
                            Some((_, true)) => return gone(state),
                            Some((seq, false)) => state.next = seq + 1,
                            None => state.next += 1,
                        }
                        metrics::counter!("chartyard_storage_retries_total").increment(1);
                        continue;
                    }
                    // Our own write, retried after its answer was lost.
                }
            }
            self.wrote(space, generation, state.next);
            state.next += 1;
            state.learnt = Some(Instant::now());
            state.ended |= entry.deleted;
            return Ok(Appended { seq: state.next - 1, changes: entry.changes.len() });
        }
        Err(RegistryError::Locked(format!("change log of {space}")))
    }

    /// Remembers an entry this process wrote (for [`ChangeLog::written_lately`]).
    fn wrote(&self, space: &str, generation: &str, seq: u64) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= 4096 {
            written.retain(|_, at| at.elapsed() < WRITTEN_MEMORY);
        }
        written.insert((space.to_string(), generation.to_string(), seq), Instant::now());
    }

    /// Whether this process wrote entry `seq` less than `within` ago.
    pub fn written_lately(&self, space: &str, generation: &str, seq: u64, within: Duration) -> bool {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.get(&(space.to_string(), generation.to_string(), seq)).is_some_and(|at| at.elapsed() < within)
    }

    /// The last entry after `after` (its number, and whether it ends the log), `None` if
    /// there is none. Only the last one is read: an ending entry is always the last, since
    /// no writer appends after an entry it has seen end the log, and every writer has seen
    /// every entry before the number it claims.
    async fn last(&self, space: &str, generation: &str, after: u64) -> Result<Option<(u64, bool)>> {
        let Some(&seq) = self.tail_numbers(space, generation, after).await?.last() else { return Ok(None) };
        let entry: Option<LogEntry> = self.gateway.get_json(StorageKey::LogEntry { space, generation, seq }).await?;
        Ok(Some((seq, entry.is_some_and(|entry| entry.deleted))))
    }

    /// The numbers of the entries after `after`, in order, from one listing.
    pub async fn tail_numbers(&self, space: &str, generation: &str, after: u64) -> Result<Vec<u64>> {
        let metas = self
            .gateway
            .list_after(
                StorageKey::SpaceLog { space, generation },
                StorageKey::LogEntry { space, generation, seq: after },
            )
            .await?;
        let mut numbers: Vec<u64> = metas
            .iter()
            .filter_map(|meta| parse_log_entry(&meta.location))
            .map(|(_, _, seq)| seq)
            .filter(|seq| *seq > after)
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Reads listed entries (an entry removed since the listing is left out).
    pub async fn read(&self, space: &str, generation: &str, numbers: Vec<u64>) -> Result<Vec<(u64, LogEntry)>> {
        use futures::stream::{StreamExt, TryStreamExt};
        let read: Vec<Option<(u64, LogEntry)>> = futures::stream::iter(numbers)
            .map(|seq| async move {
                let entry: Option<LogEntry> =
                    self.gateway.get_json(StorageKey::LogEntry { space, generation, seq }).await?;
                Ok::<_, RegistryError>(entry.map(|entry| (seq, entry)))
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(read.into_iter().flatten().collect())
    }

    /// A generation's checkpoint and the ETag it was read at; `None` if it has none.
    pub async fn checkpoint(&self, space: &str, generation: &str) -> Result<Option<(Checkpoint, Option<String>)>> {
        let key = StorageKey::Checkpoint { space, generation };
        let Some(object) = self.gateway.get(key).await? else { return Ok(None) };
        // An unreadable checkpoint is only a lost shortcut: the index is built from records.
        Ok(serde_json::from_slice(&object.bytes).ok().map(|checkpoint| (checkpoint, object.e_tag)))
    }

    /// The ETag of a generation's checkpoint, if it has one (read without its body).
    pub async fn checkpoint_tag(&self, space: &str, generation: &str) -> Result<Option<String>> {
        Ok(self.gateway.head(StorageKey::Checkpoint { space, generation }).await?.and_then(|meta| meta.e_tag))
    }

    /// Stores a checkpoint in place of the one read at `e_tag` (`None`: there was none);
    /// answers the new ETag, or `None` when another one was stored meanwhile (kept: it is
    /// as good as ours).
    pub async fn put_checkpoint(
        &self,
        space: &str,
        generation: &str,
        checkpoint: &Checkpoint,
        e_tag: Option<String>,
    ) -> Result<Option<Option<String>>> {
        let key = StorageKey::Checkpoint { space, generation };
        let body = to_json(checkpoint)?;
        match e_tag {
            None => match self.gateway.create(key, body).await? {
                Created::Created(tag) => Ok(Some(tag)),
                Created::Exists => Ok(None),
            },
            Some(e_tag) => {
                let current = ObjectVersion { e_tag: Some(e_tag), version: None };
                match self.gateway.replace_if(key, body, current).await? {
                    Replaced::Replaced(tag) => Ok(Some(tag)),
                    Replaced::Changed => Ok(None),
                }
            }
        }
    }

    /// Removes log entries and checkpoints no reader needs, each only once older than
    /// `grace` (and never younger than [`MIN_LOG_GRACE`]): everything of a generation no
    /// marker names (`live` maps each space to its generation), and the entries of a live
    /// log at or below its checkpoint, except its last entry, which tells appenders where
    /// the log goes on. Answers how many objects were removed.
    pub async fn collect(&self, live: &HashMap<String, String>, grace: Duration) -> Result<usize> {
        let cutoff = SystemTime::now() - grace.max(MIN_LOG_GRACE);
        let old = |meta: &ObjectMeta| SystemTime::from(meta.last_modified) < cutoff;
        let mut logs: HashMap<(String, String), Vec<(u64, ObjectMeta)>> = HashMap::new();
        for meta in self.gateway.list(StorageKey::AllLogs).await? {
            if let Some((space, generation, seq)) = parse_log_entry(&meta.location) {
                logs.entry((space, generation)).or_default().push((seq, meta));
            }
        }
        let mut removed = 0;
        for ((space, generation), entries) in &logs {
            let last = entries.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
            let below = if live.get(space) != Some(generation) {
                u64::MAX
            } else {
                let checkpoint = self.checkpoint(space, generation).await?.map_or(0, |(checkpoint, _)| checkpoint.seq);
                checkpoint.min(last.saturating_sub(1))
            };
            for (seq, meta) in entries {
                if *seq <= below
                    && old(meta)
                    && self.gateway.delete(StorageKey::LogEntry { space, generation, seq: *seq }).await?
                {
                    removed += 1;
                }
            }
        }
        for meta in self.gateway.list(StorageKey::AllCheckpoints).await? {
            if let Some((space, generation)) = parse_checkpoint(&meta.location)
                && live.get(&space) != Some(&generation)
                && old(&meta)
                && self.gateway.delete(StorageKey::Checkpoint { space: &space, generation: &generation }).await?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the entries of a log below `below` (a checkpoint's number), never its last:
    /// for a store no other process reads, right after the checkpoint. Answers how many.
    pub async fn compact(&self, space: &str, generation: &str, below: u64) -> Result<usize> {
        let numbers = self.tail_numbers(space, generation, 0).await?;
        let last = numbers.last().copied().unwrap_or(0);
        let mut removed = 0;
        for seq in numbers.into_iter().filter(|seq| *seq < below.min(last)) {
            if self.gateway.delete(StorageKey::LogEntry { space, generation, seq }).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Forgets this process's append state of a generation (deleted, or no longer used).
    pub fn forget(&self, space: &str, generation: &str) {
        let mut appenders = self.appenders.lock().unwrap_or_else(|e| e.into_inner());
        appenders.remove(&(space.to_string(), generation.to_string()));
    }
}

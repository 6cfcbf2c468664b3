//! Backups of any store, restorable into any store.
//!
//! A backup holds what a store holds and nothing more: session ids, keyed
//! hashes, versions, expiries and sealed records, and sealed memberships
//! under keyed hashes. No token and nothing in clear. It is read from a
//! live store page by page ([`SessionStore::list`] and
//! [`SessionStore::list_memberships`]), so memory stays bounded however
//! many sessions there are, and the service keeps running meanwhile.
//!
//! # Format (version 1)
//!
//! ```text
//! magic      "TESSERA-BACKUP\0" and the format version (1): 16 bytes
//! header     the sealing key id (4 bytes) and the creation time (u64, Unix s)
//! frames     tag (1 byte), length (u32), body:
//!              1 session:    id 16 | user key 16 | org key 16 | expires_at u64
//!                            | version u64 | sealed bytes
//!              2 membership: key 16 | sealed bytes
//!              0 end:        sessions u64 | memberships u64
//! mac        HMAC-SHA256 of everything before it: 32 bytes
//! ```
//!
//! Integers are big-endian. The MAC key is derived from
//! `SESSION_ENCRYPTION_KEY` (the key named in the header, current or
//! previous), so a truncated, modified or foreign file, or one made under
//! other keys, is refused by [`verify`] before anything is written. The
//! indexes and records in a backup are only usable under the keys that made
//! them anyway.
//!
//! # Restoring
//!
//! [`restore`] writes a batch at a time through
//! [`SessionStore::restore_batch`], which never rolls a session back: a
//! session whose version in the store is the same or higher is kept, so an
//! old backup cannot bring back a rotated-out refresh token, and restoring
//! twice changes nothing the second time. Sessions that have
//! expired since the backup are skipped. Memberships are written only where
//! there is none ([`SessionStore::restore_memberships`]), so a role changed
//! since the backup keeps its new value. What a restore cannot undo: a
//! session destroyed (or a membership removed) after the backup was made
//! comes back, because the backup cannot tell "destroyed since" from
//! "never restored here".

use std::io::{self, Read, Write};

use aws_lc_rs::{constant_time, hmac};

use crate::error::StoreError;
use crate::ids::SessionId;
use crate::keys::KeyRing;
use crate::store::{IndexKey, RestoreOutcome, SessionStore, StoredSession};

pub(crate) const MAGIC: &[u8; 15] = b"TESSERA-BACKUP\0";
pub(crate) const FORMAT: u8 = 1;
const TAG_END: u8 = 0;
const TAG_SESSION: u8 = 1;
const TAG_MEMBERSHIP: u8 = 2;
/// The largest frame body accepted. Sealed records are a few hundred
/// bytes; a bigger length is a damaged file, not a reason to allocate.
const MAX_FRAME: usize = 1 << 20;
const MAC_LEN: usize = 32;
/// Sessions and memberships asked of the store per page.
const PAGE: usize = 1000;
/// Sessions (or memberships) handed to the store per batch by [`restore`]:
/// large enough that a batch's commit or round trip is shared by many
/// records, small enough that a batch is a fraction of a MiB.
pub const BATCH: usize = 1000;

/// Why a backup could not be written, read or restored. Messages never
/// contain what the file or the store holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading or writing the file failed.
    #[error("cannot read or write the backup file: {0}")]
    Io(#[from] io::Error),
    /// The file is not a Tessera backup, or of a format version this build
    /// does not know.
    #[error("the file is not a Tessera backup (or of an unknown format version)")]
    NotABackup,
    /// The file ends early or its frames are malformed.
    #[error("the backup file is truncated or damaged")]
    Damaged,
    /// The file's MAC does not match: it was modified.
    #[error("the backup file fails its integrity check: it was modified or damaged")]
    Tampered,
    /// The file was made under a `SESSION_ENCRYPTION_KEY` this key ring
    /// does not hold.
    #[error(
        "the backup was made under another SESSION_ENCRYPTION_KEY (set it, current or previous, \
         as it was when the backup was made)"
    )]
    OtherKeys,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a backup holds, from its header and end frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// Sessions in it.
    pub sessions: u64,
    /// Memberships in it.
    pub memberships: u64,
}

/// What a [`restore`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Sessions written.
    pub sessions_written: u64,
    /// Sessions left as they were: the store had the same or a newer
    /// version.
    pub sessions_kept: u64,
    /// Sessions skipped because they expired since the backup.
    pub sessions_expired: u64,
    /// Memberships written.
    pub memberships_written: u64,
    /// Memberships left as they were: the store had one under that key.
    pub memberships_kept: u64,
}

/// Progress of a backup or restore: records done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Sessions done.
    pub sessions: u64,
    /// Memberships done.
    pub memberships: u64,
}

/// Writes bytes through to `out` and into the MAC.
struct MacWriter<W> {
    out: W,
    mac: hmac::Context,
    bytes: u64,
}

impl<W: Write> MacWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.mac.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn frame(&mut self, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| io::Error::other("a record is too large"))?;
        self.put(&[tag])?;
        self.put(&len.to_be_bytes())?;
        for p in parts {
            self.put(p)?;
        }
        Ok(())
    }
}

/// Writes a backup of every live session and membership in `store` to
/// `out`, page by page, calling `progress` after each page. Returns what
/// it wrote. The service may keep writing meanwhile: a session created
/// during the backup may or may not be in it; one that lives through the
/// whole backup is in it exactly once.
pub async fn write<W: Write>(
    store: &dyn SessionStore,
    keys: &KeyRing,
    now: u64,
    out: W,
    mut progress: impl FnMut(Progress),
) -> Result<BackupInfo, BackupError> {
    let key = keys.sealing_key();
    let mut w = MacWriter {
        out,
        mac: hmac::Context::with_key(&key.backup_mac),
        bytes: 0,
    };
    w.put(MAGIC)?;
    w.put(&[FORMAT])?;
    w.put(&key.kid())?;
    w.put(&now.to_be_bytes())?;

    let mut done = Progress::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(None, cursor.as_deref(), PAGE, now).await?;
        for s in &page.sessions {
            w.frame(
                TAG_SESSION,
                &[
                    s.id.as_bytes(),
                    &s.user_key,
                    &s.org_key,
                    &s.expires_at.to_be_bytes(),
                    &s.version.to_be_bytes(),
                    &s.sealed,
                ],
            )?;
        }
        done.sessions += page.sessions.len() as u64;
        progress(done);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_memberships(cursor.as_deref(), PAGE).await?;
        for (k, sealed) in &page.memberships {
            w.frame(TAG_MEMBERSHIP, &[k, sealed])?;
        }
        done.memberships += page.memberships.len() as u64;
        progress(done);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    w.frame(
        TAG_END,
        &[
            &done.sessions.to_be_bytes(),
            &done.memberships.to_be_bytes(),
        ],
    )?;
    let MacWriter { mut out, mac, .. } = w;
    out.write_all(mac.sign().as_ref())?;
    out.flush()?;
    Ok(BackupInfo {
        created_at: now,
        sessions: done.sessions,
        memberships: done.memberships,
    })
}

/// One record of a backup.
#[derive(Debug)]
pub(crate) enum Record {
    Session(StoredSession),
    Membership(IndexKey, Vec<u8>),
}

/// Reads a backup frame by frame, MAC-ing as it goes.
struct Reader<R> {
    input: R,
    /// Taken when the end frame's MAC is checked.
    mac: Option<hmac::Context>,
    created_at: u64,
    counted: Progress,
    finished: Option<BackupInfo>,
}

fn read_exact<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BackupError::Damaged,
        _ => BackupError::Io(e),
    })
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, BackupError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(BackupError::Damaged)
}

fn key_at(b: &[u8], at: usize) -> Result<[u8; 16], BackupError> {
    b.get(at..at + 16)
        .and_then(|s| s.try_into().ok())
        .ok_or(BackupError::Damaged)
}

impl<R: Read> Reader<R> {
    fn open(mut input: R, keys: &KeyRing) -> Result<Self, BackupError> {
        let mut head = [0u8; 16];
        input.read_exact(&mut head).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BackupError::NotABackup,
            _ => BackupError::Io(e),
        })?;
        if &head[..15] != MAGIC || head[15] != FORMAT {
            return Err(BackupError::NotABackup);
        }
        let mut header = [0u8; 12];
        read_exact(&mut input, &mut header)?;
        let mut kid = [0u8; 4];
        kid.copy_from_slice(&header[..4]);
        let key = keys.sealing_key_by_kid(kid).ok_or(BackupError::OtherKeys)?;
        let mut mac = hmac::Context::with_key(&key.backup_mac);
        mac.update(&head);
        mac.update(&header);
        Ok(Self {
            input,
            mac: Some(mac),
            created_at: u64_at(&header, 4)?,
            counted: Progress::default(),
            finished: None,
        })
    }

    /// The next record, or `None` after the end frame and a MAC that
    /// matches. Every error is final.
    fn next(&mut self) -> Result<Option<Record>, BackupError> {
        if self.finished.is_some() {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        read_exact(&mut self.input, &mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(BackupError::Damaged);
        }
        let mut body = vec![0u8; len];
        read_exact(&mut self.input, &mut body)?;
        let Some(mac) = self.mac.as_mut() else {
            return Err(BackupError::Damaged);
        };
        mac.update(&head);
        mac.update(&body);
        match head[0] {
            TAG_SESSION => {
                if len < 16 * 3 + 16 {
                    return Err(BackupError::Damaged);
                }
                let id = SessionId::from_uuid(uuid::Uuid::from_bytes(key_at(&body, 0)?));
                let session = StoredSession {
                    id,
                    user_key: key_at(&body, 16)?,
                    org_key: key_at(&body, 32)?,
                    expires_at: u64_at(&body, 48)?,
                    version: u64_at(&body, 56)?,
                    sealed: body.split_off(64),
                };
                self.counted.sessions += 1;
                Ok(Some(Record::Session(session)))
            }
            TAG_MEMBERSHIP => {
                if len < 16 {
                    return Err(BackupError::Damaged);
                }
                let key = key_at(&body, 0)?;
                self.counted.memberships += 1;
                Ok(Some(Record::Membership(key, body.split_off(16))))
            }
            TAG_END => {
                if len != 16 {
                    return Err(BackupError::Damaged);
                }
                let info = BackupInfo {
                    created_at: self.created_at,
                    sessions: u64_at(&body, 0)?,
                    memberships: u64_at(&body, 8)?,
                };
                let mut tag = [0u8; MAC_LEN];
                read_exact(&mut self.input, &mut tag)?;
                let mac = self.mac.take().ok_or(BackupError::Damaged)?;
                if constant_time::verify_slices_are_equal(mac.sign().as_ref(), &tag).is_err() {
                    return Err(BackupError::Tampered);
                }
                // Checked only once authentic: counts that disagree with
                // the frames mean the writer was broken, not an attacker.
                if info.sessions != self.counted.sessions
                    || info.memberships != self.counted.memberships
                {
                    return Err(BackupError::Damaged);
                }
                let mut extra = [0u8; 1];
                match self.input.read(&mut extra) {
                    Ok(0) => {}
                    Ok(_) => return Err(BackupError::Damaged),
                    Err(e) => return Err(BackupError::Io(e)),
                }
                self.finished = Some(info);
                Ok(None)
            }
            _ => Err(BackupError::Damaged),
        }
    }
}

/// Reads a whole backup and checks it: the format, every frame, the counts
/// and the MAC under `keys`. Nothing is written anywhere. Memory stays
/// bounded (one record at a time).
pub fn verify<R: Read>(input: R, keys: &KeyRing) -> Result<BackupInfo, BackupError> {
    let mut reader = Reader::open(input, keys)?;
    while reader.next()?.is_some() {}
    reader.finished.ok_or(BackupError::Damaged)
}

/// Writes the backup in `input` into `store`. Call [`verify`] on the same
/// bytes first: this checks the MAC too, but only at the end, after the
/// records before it have been written. Sessions go through
/// [`SessionStore::restore_batch`] (never a rollback, expired ones
/// skipped), memberships through [`SessionStore::restore_memberships`]
/// (never an overwrite), [`BATCH`] at a time, so memory stays bounded;
/// `progress` is called after every batch.
pub async fn restore<R: Read>(
    store: &dyn SessionStore,
    keys: &KeyRing,
    now: u64,
    input: R,
    mut progress: impl FnMut(Progress),
) -> Result<RestoreSummary, BackupError> {
    let mut reader = Reader::open(input, keys)?;
    let mut summary = RestoreSummary::default();
    let mut done = Progress::default();
    let mut sessions = Vec::with_capacity(BATCH);
    let mut memberships = Vec::with_capacity(BATCH);
    loop {
        let record = reader.next()?;
        let finished = record.is_none();
        match record {
            Some(Record::Session(s)) => sessions.push(s),
            Some(Record::Membership(key, sealed)) => memberships.push((key, sealed)),
            None => {}
        }
        if sessions.len() == BATCH || (finished && !sessions.is_empty()) {
            let batch = std::mem::replace(&mut sessions, Vec::with_capacity(BATCH));
            let n = batch.len();
            let outcomes = store.restore_batch(batch, now).await?;
            if outcomes.len() != n {
                return Err(StoreError::new("the store did not answer for every session").into());
            }
            for outcome in outcomes {
                match outcome {
                    RestoreOutcome::Written => summary.sessions_written += 1,
                    RestoreOutcome::Kept => summary.sessions_kept += 1,
                    RestoreOutcome::Expired => summary.sessions_expired += 1,
                }
            }
            done.sessions += n as u64;
            progress(done);
        }
        if memberships.len() == BATCH || (finished && !memberships.is_empty()) {
            let batch = std::mem::replace(&mut memberships, Vec::with_capacity(BATCH));
            let n = batch.len();
            let written = store.restore_memberships(batch).await?;
            if written.len() != n {
                return Err(
                    StoreError::new("the store did not answer for every membership").into(),
                );
            }
            let new = written.iter().filter(|w| **w).count() as u64;
            summary.memberships_written += new;
            summary.memberships_kept += n as u64 - new;
            done.memberships += n as u64;
            progress(done);
        }
        if finished {
            break;
        }
    }
    progress(done);
    Ok(summary)
}

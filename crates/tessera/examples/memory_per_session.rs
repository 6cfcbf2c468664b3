//! Resident memory per live session on the memory store.
//!
//! Creates a million sessions through the manager (a device id and an IP
//! address each, optionally a user agent) and reports how much the process's
//! resident memory grew, divided by the number of sessions. Memberships are
//! set up before the first reading, so the figure is what sessions cost, not
//! what the directory costs. Then it lets half of the sessions expire,
//! cleans them up and reads again.
//!
//! ```text
//! cargo run --release -p tessera --example memory_per_session -- \
//!     [--sessions 1000000] [--users 250000] [--orgs 1000] [--user-agent] \
//!     [--refreshes 0] [--refresh-every 86400] [--spread 0]
//! ```
//!
//! `--spread S` spreads the creations evenly over S seconds of (manual)
//! clock instead of creating them all in the same second: the expiry index
//! then holds many small per-second buckets, as in a store that has been
//! running for days.
//!
//! `--refreshes N` rotates every session's refresh token N times, with the
//! (manual) clock moved `--refresh-every` seconds before each round, ahead of
//! the reading: what a store in steady state holds, stale expiry-index
//! entries included.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::token::refresh::REFRESH_TOKEN_LEN;
use tessera::{
    DeviceId, KeyRing, Lifetimes, ManualClock, MemoryStore, NewSession, OrgId, RoleName,
    SessionManager, SessionStore, UserAgent, UserId,
};

/// A fixed "now": mid-2025, Unix seconds.
const START: u64 = 1_750_000_000;
const DAY: u64 = 24 * 3600;
/// A current desktop Chrome user agent: 111 bytes, a typical length.
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";

struct Options {
    sessions: usize,
    users: usize,
    orgs: usize,
    user_agent: bool,
    refreshes: usize,
    refresh_every: u64,
    spread: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        sessions: 1_000_000,
        users: 250_000,
        orgs: 1_000,
        user_agent: false,
        refreshes: 0,
        refresh_every: DAY,
        spread: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> Result<usize, String> {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or_else(|| format!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--sessions" => o.sessions = number()?,
            "--users" => o.users = number()?,
            "--orgs" => o.orgs = number()?,
            "--refreshes" => o.refreshes = number()?,
            "--refresh-every" => o.refresh_every = number()? as u64,
            "--spread" => o.spread = number()? as u64,
            "--user-agent" => o.user_agent = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.sessions < 2 || o.users == 0 || o.orgs == 0 {
        return Err("--sessions must be at least 2, --users and --orgs at least 1".into());
    }
    let refresh_span = if o.refreshes > 0 { o.refresh_every } else { 0 };
    if o.spread.saturating_add(DAY).saturating_add(refresh_span) >= 7 * DAY {
        return Err(
            "--spread (plus a day, plus --refresh-every) must stay under 7 days, \
                    so no session expires before the reading"
                .into(),
        );
    }
    Ok(o)
}

/// Resident and anonymous memory of this process, in bytes, from
/// `/proc/self/smaps_rollup` (Linux).
#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    anonymous: u64,
}

fn memory() -> Result<Memory, String> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup")
        .map_err(|e| format!("reading /proc/self/smaps_rollup: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no {name} in smaps_rollup"))
    };
    Ok(Memory {
        rss: field("Rss:")?,
        anonymous: field("Anonymous:")?,
    })
}

fn report(label: &str, before: Memory, after: Memory, sessions: usize) {
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / sessions as f64;
    println!(
        "{label}: {sessions} live sessions, RSS +{:.1} MiB = {:.0} bytes/session \
         (anonymous {:.0} bytes/session)",
        after.rss.saturating_sub(before.rss) as f64 / (1 << 20) as f64,
        per(after.rss, before.rss),
        per(after.anonymous, before.anonymous),
    );
}

/// A device id as mobile platforms make them: a random UUID.
fn device() -> Result<DeviceId, tessera::SessionError> {
    DeviceId::parse(&uuid::Uuid::new_v4().hyphenated().to_string())
}

/// A client address: four in five IPv4, the rest IPv6.
fn address(n: usize) -> IpAddr {
    let b = (n as u32).to_be_bytes();
    if n % 5 == 4 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            u16::from(b[0]),
            u16::from(b[1]),
            0,
            0,
            u16::from(b[2]),
            u16::from(b[3]),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(100, b[1], b[2], b[3]))
    }
}

async fn run(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new(START);
    let keys = KeyRing::new(&KeyRing::generate_secret()?, &KeyRing::generate_secret()?)?;
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::builder()
        .keys(keys)
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .lifetimes(Lifetimes {
            cleanup_interval: Duration::ZERO,
            ..Lifetimes::default()
        })
        .build()?;
    let member = RoleName::parse("member")?;
    let orgs: Vec<OrgId> = (0..o.orgs)
        .map(|_| OrgId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let users: Vec<(UserId, OrgId)> = (0..o.users)
        .map(|i| (UserId::from_uuid(uuid::Uuid::new_v4()), orgs[i % o.orgs]))
        .collect();
    for (user, org) in &users {
        manager.set_membership(user, org, &member).await?;
    }
    let user_agent = UserAgent::parse(USER_AGENT)?;
    println!(
        "{} sessions of {} users in {} orgs; device id and IP{}",
        o.sessions,
        o.users,
        o.orgs,
        if o.user_agent { " and user agent" } else { "" },
    );

    // Refresh tokens are kept only if they are needed, in fixed slots
    // written before the first reading, so they do not count as sessions.
    let slots = if o.refreshes > 0 { o.sessions } else { 0 };
    let mut refresh_tokens = vec![[b'x'; REFRESH_TOKEN_LEN]; slots];
    let base = memory()?;
    let started = Instant::now();
    // Creations spread evenly over `--spread` seconds, in two halves a day
    // apart so the first can expire while the second lives.
    let half = o.sessions / 2;
    let mut last = None;
    let offset = |n: usize| n as u64 * o.spread / o.sessions as u64;
    for n in 0..o.sessions {
        clock.set(START + offset(n) + if n >= half { DAY } else { 0 });
        let (user, org) = users[n % o.users];
        let mut new = NewSession::new(user, org)
            .device_id(device()?)
            .ip_address(address(n));
        if o.user_agent {
            new = new.user_agent(user_agent.clone());
        }
        let issued = manager.create_session(new).await?;
        last = Some(issued.session_id);
        if let Some(slot) = refresh_tokens.get_mut(n) {
            slot.copy_from_slice(issued.refresh_token.expose().as_bytes());
        }
    }
    let elapsed = started.elapsed();
    println!(
        "created in {:.1} s ({:.2} us/session)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / o.sessions as f64
    );
    for round in 0..o.refreshes {
        clock.advance(o.refresh_every);
        for slot in &mut refresh_tokens {
            let token = std::str::from_utf8(slot)?;
            let next = manager.refresh_session(token).await?;
            slot.copy_from_slice(next.refresh_token.expose().as_bytes());
        }
        println!("refresh round {} done", round + 1);
    }
    let full = memory()?;
    if let Some(id) = last
        && let Some(s) = SessionStore::get(&*store, &id, START + offset(o.sessions)).await?
    {
        println!("a sealed session record: {} bytes", s.sealed.len());
    }
    let stats = manager.session_stats().await?;
    report("all", base, full, o.sessions);
    println!(
        "store holds {} sessions, {} live",
        store.len(),
        stats.active_sessions
    );

    // Past the first half's expiry (7 days after creation, unless refreshed)
    // but before the second half's.
    if o.refreshes == 0 {
        clock.set(START + 7 * DAY + offset(half));
        let removed = manager.cleanup_expired_sessions().await?;
        let after = memory()?;
        let live = o.sessions - removed as usize;
        println!("cleanup removed {removed} sessions");
        report("after cleanup", base, after, live);
    }
    drop(refresh_tokens);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options().map_err(|e| {
        eprintln!("{e}");
        e
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(run(o))
}

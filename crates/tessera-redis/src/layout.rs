//! Where things live in Redis: shards, hash tags, key names and the cursors
//! of session and membership listings.
//!
//! Sessions are spread over [`SHARDS`] shards by their id. Every key of a
//! shard carries the shard's hash tag, so in a cluster they share one slot
//! and one Lua script can touch them all atomically. The tags were chosen so
//! that shard `k`'s slot falls in the middle of the `k`-th sixteenth of the
//! slot space: a cluster whose masters own equal slot ranges (what
//! `redis-cli --cluster create` makes) gets an even share of shards each.
//!
//! Changing [`SHARDS`] or the tags moves every key: it is a data migration,
//! not a setting, which is why neither is configurable.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera::ids::SessionId;
use tessera::store::IndexKey;

/// How many shards sessions are spread over.
pub(crate) const SHARDS: usize = 16;

/// The hash tag of each shard (see the module docs for how they were picked).
const TAGS: [&str; SHARDS] = [
    "s00.22", "s01.21", "s02.11", "s03.12", "s04.41", "s05.42", "s06.2", "s07.5", "s08.4", "s09.3",
    "s10.22", "s11.25", "s12.2", "s13.1", "s14.41", "s15.46",
];

/// The shard a session lives in. Session ids are random (UUID v4), so their
/// last byte is uniform.
pub(crate) fn shard_of(id: &SessionId) -> usize {
    usize::from(id.as_bytes()[15]) % SHARDS
}

/// Lowercase hex, for key names.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The 16 bytes that [`hex`] wrote as 32 lowercase hex digits.
fn unhex(s: &[u8]) -> Option<IndexKey> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// Key names under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    prefix: String,
    /// `<prefix>{<tag>}:` for each shard: the `base` every shard script gets.
    bases: Vec<String>,
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            bases: TAGS.iter().map(|t| format!("{prefix}{{{t}}}:")).collect(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key-name prefix of one shard, ending in `:`.
    pub(crate) fn base(&self, shard: usize) -> &str {
        &self.bases[shard]
    }

    /// A session's record: a hash of version, expiry, user key, org key and
    /// sealed bytes, expiring with the session.
    pub(crate) fn record(&self, id: &SessionId) -> String {
        format!("{}r:{}", self.base(shard_of(id)), hex(id.as_bytes()))
    }

    /// A shard's expiry index: every session of the shard, scored by
    /// `expires_at`.
    pub(crate) fn expiry(&self, shard: usize) -> String {
        format!("{}exp", self.base(shard))
    }

    /// A shard's listing index: every session of the shard at score 0, so
    /// members sort by org key, then id.
    pub(crate) fn listing(&self, shard: usize) -> String {
        format!("{}ids", self.base(shard))
    }

    /// A user's sessions in one shard, scored by `expires_at`.
    pub(crate) fn user(&self, shard: usize, user_key: &IndexKey) -> String {
        format!("{}u:{}", self.base(shard), hex(user_key))
    }

    /// A sealed membership. No hash tag: memberships spread over the cluster.
    pub(crate) fn membership(&self, key: &IndexKey) -> String {
        format!("{}m:{}", self.prefix, hex(key))
    }

    /// The `SCAN MATCH` pattern of this prefix's memberships: the prefix
    /// with glob characters escaped, `m:`, then exactly 32 characters, so
    /// neither another deployment whose prefix extends this one nor a key of
    /// another kind matches.
    pub(crate) fn membership_pattern(&self) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 40);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("m:");
        out.push_str(&"?".repeat(32));
        out
    }

    /// The key of a membership from its key name, or `None` if the name is
    /// not one [`membership`](Self::membership) makes.
    pub(crate) fn membership_key(&self, name: &[u8]) -> Option<IndexKey> {
        let rest = name
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b"m:")?;
        unhex(rest)
    }

    /// A rate limiter's state for one (already opaque) key.
    pub(crate) fn rate_limit(&self, key: &[u8]) -> String {
        format!("{}rl:{}", self.prefix, hex(key))
    }
}

/// Where a listing resumes: a shard, and the last member seen in it (none
/// at the start of the shard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) shard: usize,
    pub(crate) after: Option<[u8; 32]>,
}

const CURSOR_VERSION: u8 = 1;

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(34);
        raw.push(CURSOR_VERSION);
        // SHARDS is 16, so a shard number always fits a byte.
        raw.push(self.shard as u8);
        if let Some(m) = &self.after {
            raw.extend_from_slice(m);
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub(crate) fn decode(s: &str) -> Option<Self> {
        if s.len() > 64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let (&version, rest) = raw.split_first()?;
        let (&shard, rest) = rest.split_first()?;
        let shard = usize::from(shard);
        if version != CURSOR_VERSION || shard >= SHARDS {
            return None;
        }
        let after = match rest.len() {
            0 => None,
            32 => Some(rest.try_into().ok()?),
            _ => return None,
        };
        Some(Self { shard, after })
    }
}

/// Where a membership listing resumes.
///
/// Memberships have no hash tag, so they are found with `SCAN`, server by
/// server. A cluster's masters are visited in the order of the lowest slot
/// each owns, and a master is named by that slot rather than by its
/// address, so requests follow the client's slot map; a standalone server
/// is node 0. `SCAN` may return more keys than the page has room for: the
/// rest travel in the cursor (`pending`) and open the next page, so no key
/// `SCAN` returned is dropped and the scan itself is never repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MembershipCursor {
    /// The lowest slot of the master being scanned, or `None` once every
    /// server has been scanned to the end.
    pub(crate) node: Option<u16>,
    /// The `SCAN` cursor to send that server next (0 at its start).
    pub(crate) scan: u64,
    /// Keys `SCAN` returned that no page has carried yet, next first.
    pub(crate) pending: Vec<IndexKey>,
}

const MEMBERSHIP_CURSOR_VERSION: u8 = 1;

/// More keys than one page's `SCAN` calls can leave over; a longer cursor is
/// not one this store made.
pub(crate) const MAX_PENDING: usize = 4096;

/// `node` in an encoded cursor when every server is done.
const NO_NODE: u16 = u16::MAX;

impl MembershipCursor {
    /// The start of a listing on the master that owns `node`.
    pub(crate) fn start(node: Option<u16>) -> Self {
        Self {
            node,
            scan: 0,
            pending: Vec::new(),
        }
    }

    /// Version byte, node (u16, big-endian), `SCAN` cursor (u64,
    /// big-endian), then 16 bytes per pending key; base64url.
    pub(crate) fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(11 + 16 * self.pending.len());
        raw.push(MEMBERSHIP_CURSOR_VERSION);
        raw.extend_from_slice(&self.node.unwrap_or(NO_NODE).to_be_bytes());
        raw.extend_from_slice(&self.scan.to_be_bytes());
        for k in &self.pending {
            raw.extend_from_slice(k);
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub(crate) fn decode(s: &str) -> Option<Self> {
        if s.len() > (11 + 16 * MAX_PENDING).div_ceil(3) * 4 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let (&version, rest) = raw.split_first()?;
        let (node, rest) = rest.split_first_chunk::<2>()?;
        let (scan, rest) = rest.split_first_chunk::<8>()?;
        if version != MEMBERSHIP_CURSOR_VERSION || !rest.len().is_multiple_of(16) {
            return None;
        }
        let node = match u16::from_be_bytes(*node) {
            NO_NODE => None,
            // 16384 slots in a cluster.
            n if n < 16384 => Some(n),
            _ => return None,
        };
        let scan = u64::from_be_bytes(*scan);
        let pending: Vec<IndexKey> = rest
            .chunks_exact(16)
            .map(|k| k.try_into().ok())
            .collect::<Option<_>>()?;
        // A finished listing has nothing left to scan: only pending keys.
        if node.is_none() && (scan != 0 || pending.is_empty()) {
            return None;
        }
        Some(Self {
            node,
            scan,
            pending,
        })
    }
}

/// The `ZRANGEBYLEX` bounds of a listing page: everything after `after`,
/// within `org` when filtering. `None` when nothing can be left in range.
pub(crate) fn lex_bounds(
    org: Option<&IndexKey>,
    after: Option<&[u8; 32]>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let exclusive = |m: &[u8]| [b"(".as_slice(), m].concat();
    match org {
        None => Some((
            after.map_or_else(|| b"-".to_vec(), |m| exclusive(m)),
            b"+".to_vec(),
        )),
        Some(o) => {
            let max = [b"[".as_slice(), o, &[0xff; 16]].concat();
            let min = match after {
                Some(m) if m[..16] == o[..] => exclusive(m),
                Some(m) if m[..16] > o[..] => return None,
                _ => [b"[".as_slice(), o].concat(),
            };
            Some((min, max))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC16/XMODEM as Redis Cluster computes key slots.
    fn slot(key: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in key {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn slot_function_matches_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"somekey"), 11058);
    }

    #[test]
    fn each_shard_tag_sits_inside_its_sixteenth_of_the_slot_space() {
        for (k, tag) in TAGS.iter().enumerate() {
            let s = usize::from(slot(tag.as_bytes()));
            assert!(
                (k * 1024 + 128..(k + 1) * 1024 - 128).contains(&s),
                "tag {tag} has slot {s}"
            );
        }
    }

    #[test]
    fn every_key_of_a_shard_has_the_shards_tag() {
        let layout = Layout::new("app:");
        let id = SessionId::random();
        let shard = shard_of(&id);
        let tag = format!("{{{}}}", TAGS[shard]);
        for key in [
            layout.record(&id),
            layout.expiry(shard),
            layout.listing(shard),
            layout.user(shard, &[7; 16]),
        ] {
            assert!(key.starts_with("app:"), "{key}");
            // The first `{...}` of a key is its hash tag.
            let open = key.find('{').expect("tag");
            let close = key[open..].find('}').expect("tag end") + open;
            assert_eq!(&key[open..=close], tag, "{key}");
        }
        assert!(!layout.membership(&[1; 16]).contains('{'));
    }

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        for c in [
            Cursor {
                shard: 0,
                after: None,
            },
            Cursor {
                shard: 15,
                after: Some([0xab; 32]),
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in ["", "AQ", "AhA", "not base64!", "AR8", &"A".repeat(100)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn membership_cursors_round_trip_and_reject_anything_else() {
        for c in [
            MembershipCursor::start(Some(0)),
            MembershipCursor {
                node: Some(10923),
                scan: u64::MAX,
                pending: vec![[1; 16], [0xfe; 16]],
            },
            MembershipCursor {
                node: None,
                scan: 0,
                pending: vec![[9; 16]],
            },
        ] {
            assert_eq!(MembershipCursor::decode(&c.encode()), Some(c));
        }
        let finished_with_nothing_left = MembershipCursor::start(None).encode();
        let too_long = MembershipCursor {
            node: Some(0),
            scan: 0,
            pending: vec![[0; 16]; MAX_PENDING + 1],
        }
        .encode();
        for bad in [
            "",
            "not a cursor",
            "%%%%",
            &"A".repeat(300),
            // A list cursor is not a membership cursor.
            &Cursor {
                shard: 0,
                after: None,
            }
            .encode(),
            &finished_with_nothing_left,
            &too_long,
        ] {
            assert_eq!(MembershipCursor::decode(bad), None, "{bad}");
        }
        // Slot 16384 does not exist.
        let mut raw = vec![MEMBERSHIP_CURSOR_VERSION, 0x40, 0x00];
        raw.extend_from_slice(&[0; 8]);
        assert_eq!(MembershipCursor::decode(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn membership_names_parse_back_and_the_pattern_is_escaped() {
        let layout = Layout::new("a*b?[c]\\:");
        let key = [0x5a; 16];
        let name = layout.membership(&key);
        assert_eq!(layout.membership_key(name.as_bytes()), Some(key));
        assert_eq!(
            layout.membership_pattern(),
            format!("a\\*b\\?\\[c\\]\\\\:m:{}", "?".repeat(32))
        );
        for other in [
            "a*b?[c]\\:m:5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A",
            "a*b?[c]\\:m:5a5a",
            "a*b?[c]\\:rl:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
            "other:m:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        ] {
            assert_eq!(layout.membership_key(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn org_bounds_never_reach_outside_the_org() {
        let org = [5u8; 16];
        let (min, max) = lex_bounds(Some(&org), None).expect("range");
        assert_eq!(min[0], b'[');
        assert_eq!(&max[1..17], &org);
        let mut before = [0u8; 32];
        before[..16].copy_from_slice(&[4; 16]);
        assert_eq!(lex_bounds(Some(&org), Some(&before)).expect("range").0, min);
        let mut past = [0u8; 32];
        past[..16].copy_from_slice(&[6; 16]);
        assert_eq!(lex_bounds(Some(&org), Some(&past)), None);
    }
}

//! Compact JWS (RFC 7515 §7.1), read strictly.
//!
//! Access tokens are parsed here rather than by a general JWT library
//! because a general library accepts more than Tessera ever writes, and each
//! extra it accepts is attack surface: `crit` and key-carrying headers
//! (`jku`, `jwk`, `x5u`, `x5c`), nested tokens (`cty`), duplicate members
//! (which two parsers may resolve differently), `null` where a value is
//! expected. The rules:
//!
//! - exactly three non-empty segments of canonical base64url: no padding, no
//!   `+` or `/`, no whitespace, and zero unused trailing bits, so one token
//!   has exactly one spelling;
//! - the header is a JSON object with a string `alg`, an optional string
//!   `kid` and an optional `typ` of `JWT`; the headers that name keys,
//!   declare critical extensions or change the format are refused; other
//!   unknown members are ignored;
//! - no member name appears twice, in the header or in the claims, whatever
//!   its spelling (`"\u0065xp"` is `exp`);
//! - header and payload are UTF-8, nest at most 128 deep (`serde_json`'s
//!   limit), and the header is at most [`MAX_HEADER_LEN`] characters.
//!
//! Nothing here allocates for a token Tessera issued, except the decoded
//! payload.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The longest header segment read, in characters.
pub(crate) const MAX_HEADER_LEN: usize = 1024;
/// The most members a header or claims object may have.
const MAX_MEMBERS: usize = 64;

/// The three segments of a compact JWS, still encoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segments<'a> {
    /// `header.payload`: the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
}

/// Splits `token` into exactly three non-empty segments.
pub(crate) fn split(token: &str) -> Option<Segments<'_>> {
    let mut dots = token.bytes().enumerate().filter(|&(_, b)| b == b'.');
    let first = dots.next()?.0;
    let second = dots.next()?.0;
    if dots.next().is_some() {
        return None;
    }
    let (header, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return None;
    }
    Some(Segments {
        signing_input: &token.as_bytes()[..second],
        header,
        payload,
        signature,
    })
}

/// Decodes canonical base64url into `out`, returning the decoded length.
/// `URL_SAFE_NO_PAD` refuses padding, the standard alphabet, whitespace and
/// non-zero trailing bits.
pub(crate) fn decode_into(segment: &str, out: &mut [u8]) -> Option<usize> {
    // The engine wants room for its estimate, which can exceed the exact
    // length by up to two bytes; the caller's buffer carries that slack.
    URL_SAFE_NO_PAD.decode_slice(segment.as_bytes(), out).ok()
}

/// Decodes a canonical base64url segment into a new buffer.
pub(crate) fn decode(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment.as_bytes()).ok()
}

/// A JSON string, borrowed from the input when it has no escapes.
pub(crate) struct Str<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Tracks the member names of one JSON object and refuses a repeat.
///
/// Names the caller knows are tracked as bits, so a token Tessera issued is
/// checked without allocating; other names go to a list that is only
/// allocated when such a name appears.
pub(crate) struct Members<'de> {
    known: u64,
    others: Vec<Cow<'de, str>>,
    count: usize,
}

impl<'de> Members<'de> {
    pub(crate) fn new() -> Self {
        Self {
            known: 0,
            others: Vec::new(),
            count: 0,
        }
    }

    /// Records a known member, numbered `bit` (below 64).
    pub(crate) fn known<E: de::Error>(&mut self, bit: u32) -> Result<(), E> {
        self.count_one()?;
        let mask = 1u64 << bit;
        if self.known & mask != 0 {
            return Err(E::custom("duplicate member"));
        }
        self.known |= mask;
        Ok(())
    }

    /// Records a member the caller does not know.
    pub(crate) fn other<E: de::Error>(&mut self, name: Cow<'de, str>) -> Result<(), E> {
        self.count_one()?;
        if self.others.contains(&name) {
            return Err(E::custom("duplicate member"));
        }
        self.others.push(name);
        Ok(())
    }

    fn count_one<E: de::Error>(&mut self) -> Result<(), E> {
        self.count += 1;
        if self.count > MAX_MEMBERS {
            return Err(E::custom("too many members"));
        }
        Ok(())
    }
}

/// The JOSE header, as far as Tessera reads it.
#[derive(Debug)]
pub(crate) struct Header<'de> {
    pub(crate) alg: Cow<'de, str>,
    pub(crate) kid: Option<Cow<'de, str>>,
}

/// Header members refused outright: they name keys to fetch or trust
/// (`jku`, `jwk`, `x5u`, `x5c`, `x5t`, `x5t#S256`), demand extensions
/// (`crit`, `b64`), nest or compress content (`cty`, `zip`), or belong to
/// JWE (`enc`, `epk`, `apu`, `apv`, `iv`, `tag`, `p2s`, `p2c`). Tessera
/// never writes any of them, and refusing them means no code path can
/// fetch a URL or trust a key a token brings along.
const REFUSED_HEADERS: &[&str] = &[
    "crit", "b64", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "cty", "zip", "enc", "epk",
    "apu", "apv", "iv", "tag", "p2s", "p2c",
];

impl<'de> de::Deserialize<'de> for Header<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
                let mut members = Members::new();
                let mut alg = None;
                let mut kid = None;
                while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
                    match &*name {
                        "alg" => {
                            members.known(0)?;
                            alg = Some(map.next_value::<Str<'de>>()?.0);
                        }
                        "kid" => {
                            members.known(1)?;
                            kid = Some(map.next_value::<Str<'de>>()?.0);
                        }
                        "typ" => {
                            members.known(2)?;
                            if map.next_value::<Str<'de>>()?.0 != "JWT" {
                                return Err(de::Error::custom("unexpected typ"));
                            }
                        }
                        n if REFUSED_HEADERS.contains(&n) => {
                            return Err(de::Error::custom("refused header member"));
                        }
                        _ => {
                            members.other(name)?;
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
                Ok(Header { alg, kid })
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes and parses a header segment. The decoded header lives in `buf`.
pub(crate) fn parse_header<'b>(
    segment: &str,
    buf: &'b mut [u8; MAX_HEADER_LEN * 3 / 4 + 3],
) -> Option<Header<'b>> {
    if segment.len() > MAX_HEADER_LEN {
        return None;
    }
    let n = decode_into(segment, buf)?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_wants_exactly_three_non_empty_segments() {
        assert!(split("a.b.c").is_some());
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "a..c",
            ".b.c",
            "a.b.",
            "a.b.c.d.e",
        ] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
        let s = split("aa.bb.cc").expect("three");
        assert_eq!(s.signing_input, b"aa.bb");
    }

    #[test]
    fn only_canonical_base64url_decodes() {
        let mut buf = [0u8; 8];
        assert_eq!(decode_into("AQ", &mut buf), Some(1));
        for bad in ["AQ==", "AR", "A+", "A/", "A Q", "AQ\n", "A"] {
            assert_eq!(decode_into(bad, &mut buf), None, "{bad:?}");
        }
    }

    #[test]
    fn a_header_with_a_repeated_or_refused_member_does_not_parse() {
        let ok: Header<'_> =
            serde_json::from_str(r#"{"alg":"HS256","x":1,"y":{"z":2}}"#).expect("parses");
        assert_eq!(ok.alg, "HS256");
        for bad in [
            r#"{"alg":"HS256","alg":"HS256"}"#,
            r#"{"alg":"HS256","\u0061lg":"none"}"#,
            r#"{"alg":"HS256","x":1,"x":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","typ":"jwt"}"#,
            r#"{"alg":"HS256","kid":null}"#,
            r#"{"kid":"a"}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<Header<'_>>(bad).is_err(), "{bad}");
        }
        let many: String = (0..MAX_MEMBERS).map(|i| format!(r#","m{i}":0"#)).collect();
        assert!(
            serde_json::from_str::<Header<'_>>(&format!(r#"{{"alg":"HS256"{many}}}"#)).is_err()
        );
    }
}

//! Validated identifiers, parsed once at the boundary.
//!
//! Every type here can only hold a value that passed its grammar, so code
//! behind the boundary never re-checks. Parsing failures are
//! `VALIDATION_ERROR`s that name the field but never echo long input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{Result, SessionError};

fn parse_uuid(field: &'static str, s: &str) -> Result<Uuid> {
    // Only the hyphenated form: braces, URNs and the simple form are refused so
    // that one id has one spelling everywhere.
    if s.len() != 36 {
        return Err(SessionError::validation(format!(
            "{field} must be a hyphenated UUID"
        )));
    }
    Uuid::try_parse(s)
        .map_err(|_| SessionError::validation(format!("{field} must be a hyphenated UUID")))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the hyphenated UUID form (any case; kept lowercase).
            pub fn parse(s: &str) -> Result<Self> {
                parse_uuid($field, s).map(Self)
            }

            /// Wraps an already validated UUID.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl FromStr for $name {
            type Err = SessionError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
                } else {
                    Uuid::deserialize(d).map(Self)
                }
            }
        }
    };
}

uuid_id!(
    /// A user's id: a UUID.
    UserId,
    "user_id"
);
uuid_id!(
    /// An organization's id: a UUID.
    OrgId,
    "org_id"
);
uuid_id!(
    /// A session's id: a random (version 4) UUID drawn from the OS CSPRNG.
    ///
    /// A session id is an identifier, not a credential: knowing it does not
    /// let anyone act as the session (that takes a signed access token or the
    /// secret half of a refresh token).
    SessionId,
    "session_id"
);

impl SessionId {
    /// A fresh random session id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

/// The longest accepted device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// The longest accepted user agent, in bytes.
pub const MAX_USER_AGENT_LEN: usize = 512;

/// A client-chosen device identifier: 1 to 128 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses a device id.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > MAX_DEVICE_ID_LEN {
            return Err(SessionError::validation(format!(
                "device_id must be 1 to {MAX_DEVICE_ID_LEN} characters"
            )));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(SessionError::validation(
                "device_id must be printable ASCII without spaces",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The device id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
    }
}

/// A client's user agent string: up to 512 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UserAgent(String);

impl UserAgent {
    /// Parses a user agent.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() > MAX_USER_AGENT_LEN {
            return Err(SessionError::validation(format!(
                "user_agent must be at most {MAX_USER_AGENT_LEN} bytes"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(SessionError::validation(
                "user_agent must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The user agent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserAgent({:?})", self.0)
    }
}

impl<'de> Deserialize<'de> for UserAgent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
    }
}

/// Parses a client IP address (IPv4 dotted quad or IPv6).
pub fn parse_ip(s: &str) -> Result<std::net::IpAddr> {
    if s.len() > 45 {
        return Err(SessionError::validation("ip_address is not an IP address"));
    }
    s.parse()
        .map_err(|_| SessionError::validation("ip_address is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_accept_only_the_hyphenated_form() {
        let id = UserId::parse("6F9619FF-8B86-D011-B42D-00CF4FC964FF").expect("valid");
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00cf4fc964ff");
        for bad in [
            "",
            "6f9619ff8b86d011b42d00cf4fc964ff",
            "{6f9619ff-8b86-d011-b42d-00cf4fc964ff}",
            "urn:uuid:6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "6f9619ff-8b86-d011-b42d-00cf4fc964fg",
            "not a uuid at all, but thirty-six ch",
        ] {
            let err = UserId::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::Validation);
        }
    }

    #[test]
    fn device_ids_are_bounded_printable_ascii() {
        assert!(DeviceId::parse("iphone-15_A").is_ok());
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse("has space").is_err());
        assert!(DeviceId::parse("tab\t").is_err());
        assert!(DeviceId::parse("é").is_err());
        assert!(DeviceId::parse(&"a".repeat(129)).is_err());
        assert!(DeviceId::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn user_agents_refuse_control_characters_and_excess_length() {
        assert!(UserAgent::parse("Mozilla/5.0 (X11; Linux x86_64)").is_ok());
        assert!(UserAgent::parse("evil\r\nSet-Cookie: x").is_err());
        assert!(UserAgent::parse(&"a".repeat(513)).is_err());
    }

    #[test]
    fn ip_addresses_parse_both_families() {
        assert!(parse_ip("203.0.113.7").is_ok());
        assert!(parse_ip("2001:db8::1").is_ok());
        assert!(parse_ip("203.0.113.300").is_err());
        assert!(parse_ip("localhost").is_err());
    }
}

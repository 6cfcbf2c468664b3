//! Secrets that are public knowledge: copied from tutorials, framework
//! defaults and the word lists JWT cracking tools try first. Only entries of
//! at least 32 characters matter here, since shorter ones fail the length
//! check anyway. Compared case-insensitively.

const KNOWN_WEAK: &[&str] = &[
    "gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr9C",
    "thisisaverylongsecretkeyforjwttokens",
    "this_is_a_very_long_secret_key_for_jwt",
    "mysupersecretkeythatisatleast32characterslong",
    "a-string-secret-at-least-256-bits-long",
    "your-256-bit-secret-your-256-bit-secret",
    "shhhhhhared-secret-shhhhhhared-secret",
    "keyboard cat keyboard cat keyboard cat",
    "top_secret_key_that_should_not_be_shared",
    "ThisIsMySecretKeyForJwtTokenGeneration",
    "404E635266556A586E3272357538782F413F4428472B4B6250645367566B5970",
    "5367566B59703373367639792F423F4528482B4D6251655468576D5A71347437",
];

/// Whether `value` is on the list of publicly known secrets.
pub(crate) fn is_known_weak(value: &str) -> bool {
    KNOWN_WEAK.iter().any(|w| w.eq_ignore_ascii_case(value))
}

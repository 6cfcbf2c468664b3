//! Secrets that are public knowledge: copied from RFC examples, tutorials,
//! framework quick-starts and the word lists JWT cracking tools (jwt_tool's
//! `jwt-common.txt`, hashcat and John wordlists) try first. Written from
//! memory of those sources, not downloaded. Only entries of at least 32
//! characters are listed, since shorter ones fail the length check anyway;
//! shorter *fragments* that mark a placeholder live in `keys.rs`.
//! Compared case-insensitively against the whole value.

const KNOWN_WEAK: &[&str] = &[
    // RFC 7515 appendix A.1, the HS256 example key, as text.
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    "gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr9C",
    // jwt.io's default secrets, old and new.
    "a-string-secret-at-least-256-bits-long",
    "your-256-bit-secret-your-256-bit-secret",
    "your-512-bit-secret-your-512-bit-secret",
    // Self-hosting quick-starts (Supabase, PostgREST, Hasura, Ory).
    "super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
    "reallyreallyreallyreallyverysafe",
    "3EK6FD+o0+c7tzBNVfjpMkNDi2yARAAKzQlk8O2IKoxQu4nF7EdAh8s3TwpHwrdWT6R",
    "PLEASE-CHANGE-ME-I-AM-VERY-INSECURE",
    "complex_password_at_least_32_characters_long",
    // Framework documentation (FastAPI, NestJS, ASP.NET Core tutorials).
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    "DO NOT USE THIS VALUE. INSTEAD, CREATE A COMPLEX SECRET AND KEEP IT SAFE OUTSIDE OF THE SOURCE CODE.",
    "this is my custom Secret key for authentication",
    "ThisIsMySecretKeyForJwtTokenGeneration",
    "ThisIsASecretKeyForJWTTokenGenerationAndValidation",
    "mySecretKeymySecretKeymySecretKeymySecretKeymySecretKeymySecretKey",
    // Spring and JJWT tutorials (the "allkeysgenerator" hex keys).
    "404E635266556A586E3272357538782F413F4428472B4B6250645367566B5970",
    "5367566B59703373367639792F423F4528482B4D6251655468576D5A71347437",
    "33743677397A24432646294A404E635266556A576E5A7234753778214125442A",
    "2B4B6250655368566D597133743677397A24432646294A404E635266556A586E",
    // Node and Express tutorials.
    "thisisaverylongsecretkeyforjwttokens",
    "this_is_a_very_long_secret_key_for_jwt",
    "this-is-a-very-long-secret-key-for-jwt",
    "mysupersecretkeythatisatleast32characterslong",
    "shhhhhhared-secret-shhhhhhared-secret",
    "keyboard cat keyboard cat keyboard cat",
    "top_secret_key_that_should_not_be_shared",
    "thisismysecretkeythatnooneshouldknow",
    "my-32-character-ultra-secure-and-ultra-long-secret",
    "my_ultra_secure_secret_key_for_jwt_tokens",
    "averylongsecretkeythatisatleast32chars",
    "secretkeysecretkeysecretkeysecretkey",
    "jwtsecretjwtsecretjwtsecretjwtsecret",
    "12345678901234567890123456789012",
    "abcdefghijklmnopqrstuvwxyz123456",
    "abcdefghijklmnopqrstuvwxyz012345",
    "qwertyuiopasdfghjklzxcvbnm123456",
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
    "ffffffffffffffffffffffffffffffff",
];

/// Whether `value` is on the list of publicly known secrets.
pub(crate) fn is_known_weak(value: &str) -> bool {
    let value = value.trim();
    KNOWN_WEAK.iter().any(|w| w.eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_long_enough_to_matter_and_is_refused() {
        for w in KNOWN_WEAK {
            assert!(
                w.chars().count() >= 32,
                "{w} is short: the length check already refuses it"
            );
            assert!(is_known_weak(w));
            assert!(is_known_weak(&w.to_lowercase()), "case-insensitive");
            let err = crate::keys::check_secret("JWT_SECRET", w).expect_err(w);
            assert!(!err.message().contains(w), "the error echoes the value");
        }
    }
}

//! How a [`PostgresStore`](crate::PostgresStore) connects: the options, the
//! URL (with the `sslmode` values libpq users expect) and the TLS setup.
//!
//! Nothing here may put the URL, or any part of it, into an error or a
//! `Debug` output: the URL can hold a password.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tessera::StoreError;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::danger::UnverifiedServer;

/// How a [`PostgresStore`](crate::PostgresStore) connects, where its tables
/// live, and how long it waits.
#[derive(Clone)]
pub struct PostgresOptions {
    /// A schema to create (if missing) and keep every Tessera table in, so
    /// several deployments, or tests, can share one database. A plain
    /// identifier: lowercase ASCII letters, digits and `_`, not starting
    /// with a digit or `pg_`, at most 63 bytes. Default `None`: the tables
    /// go in the first schema of the connection's `search_path` (usually
    /// `public`) and no schema is created.
    pub schema: Option<String>,
    /// The most connections the store holds open at once. Default 16.
    pub pool_size: usize,
    /// Start without PostgreSQL: `connect` then succeeds even when the
    /// database is down, and the migration runs at the first request (and
    /// again at the next one if it failed), so a service can come up and
    /// report itself not ready. Default `false`: `connect` connects, runs
    /// the migration and fails if either fails.
    pub lazy: bool,
    /// The longest one attempt to open a connection may take (TCP, TLS and
    /// authentication), unless the URL sets `connect_timeout`. Default 2 s.
    pub connect_timeout: Duration,
    /// The longest one store call may take, waiting for a pooled connection
    /// included; past it the call fails with a [`StoreError`]. It also
    /// bounds how long sent data may stay unacknowledged before the
    /// connection is dropped (`tcp_user_timeout`), so a dead server cannot
    /// hold calls for longer. Default 5 s.
    pub statement_timeout: Duration,
    /// For TLS (`sslmode` other than `disable`): a PEM root certificate to
    /// trust *instead of* the system's roots, for a server whose certificate
    /// a private CA issued. The URL's `sslrootcert=PATH` does the same from
    /// a file. Default `None`: the system's roots.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            pool_size: 16,
            lazy: false,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            tls_root_cert: None,
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("lazy", &self.lazy)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "tls_root_cert",
                &self
                    .tls_root_cert
                    .as_ref()
                    .map(|c| format!("{} bytes of PEM", c.len())),
            )
            .finish()
    }
}

/// Checks that `schema` is a plain identifier, safe to put in SQL quoted
/// and the same whether PostgreSQL folds it or not.
pub(crate) fn check_schema(schema: &str) -> Result<(), StoreError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with("pg_")
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::new(
            "the PostgreSQL schema must be a plain identifier: lowercase letters, digits and \
             underscores, not starting with a digit or pg_, at most 63 bytes",
        ))
    }
}

/// A parsed URL: the driver's config and where a root certificate comes
/// from, if the URL names one.
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    root_cert_file: Option<String>,
}

fn bad_url() -> StoreError {
    // No source: the parser's message could quote part of the URL.
    StoreError::new(
        "the PostgreSQL URL is not valid (expected \
         postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full])",
    )
}

/// Decodes `%XX` escapes (for an `sslrootcert` path).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a `postgres://` or `postgresql://` URL. The driver knows
/// `sslmode` `disable`, `prefer` and `require`; `verify-full` is accepted
/// here as `require`, because this store always verifies the server's
/// certificate and host name when it uses TLS. `sslrootcert` is taken out
/// and read at connect time.
pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad_url());
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    let mut root_cert_file = None;
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match (key, value) {
            ("sslmode", "verify-full") => kept.push("sslmode=require".to_owned()),
            ("sslmode", "verify-ca") => {
                return Err(StoreError::new(
                    "sslmode=verify-ca is not supported: this store always checks the server's \
                     host name; use sslmode=verify-full (or require, which verifies too)",
                ));
            }
            ("sslmode", "allow") => {
                return Err(StoreError::new(
                    "sslmode=allow is not supported; use disable, prefer, require or verify-full",
                ));
            }
            ("sslrootcert", path) => {
                root_cert_file = Some(percent_decode(path).ok_or_else(bad_url)?)
            }
            _ => kept.push(param.to_owned()),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config = tokio_postgres::Config::from_str(&rebuilt).map_err(|_| bad_url())?;
    if config.get_user().is_none_or(str::is_empty) {
        return Err(StoreError::new(
            "the PostgreSQL URL names no user (postgres://USER@HOST/DATABASE)",
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(StoreError::new("the PostgreSQL URL names no host"));
    }
    Ok(Target {
        config,
        root_cert_file,
    })
}

impl Target {
    /// Applies the options' timeouts where the URL set none.
    pub(crate) fn apply(&mut self, options: &PostgresOptions) {
        if self.config.get_connect_timeout().is_none() {
            self.config.connect_timeout(options.connect_timeout);
        }
        if self.config.get_tcp_user_timeout().is_none() {
            self.config.tcp_user_timeout(options.statement_timeout);
        }
        // The server ends a statement (a wait for a row lock included) past
        // the statement timeout too, unless the URL's options set their own.
        let given = self.config.get_options().unwrap_or_default().to_owned();
        if !given.contains("statement_timeout") {
            let ours = format!(
                "-c statement_timeout={}",
                options.statement_timeout.as_millis()
            );
            let all = if given.is_empty() {
                ours
            } else {
                format!("{given} {ours}")
            };
            self.config.options(&all);
        }
        if self.config.get_application_name().is_none() {
            self.config.application_name("tessera");
        }
    }

    /// Whether connections use TLS only, by choice or never.
    pub(crate) fn ssl_mode(&self) -> &'static str {
        match self.config.get_ssl_mode() {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            _ => "other",
        }
    }

    /// The TLS connector: rustls with the aws-lc-rs provider. With
    /// `require` (and `verify-full`) it verifies the server's certificate
    /// and host name against the given root (the options' PEM, else the
    /// URL's `sslrootcert` file) or the system's roots. With `prefer` and no
    /// root given it encrypts without verifying, like libpq (see
    /// [`crate::danger`]). With `disable` it is never used.
    pub(crate) fn tls(&self, root_pem: Option<&[u8]>) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::with_source("could not set up TLS", e))?;
        let mode = self.config.get_ssl_mode();
        let given_root = root_pem.is_some() || self.root_cert_file.is_some();
        if mode == SslMode::Disable {
            let config = builder
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth();
            return Ok(MakeRustlsConnect::new(config));
        }
        if mode == SslMode::Prefer && !given_root {
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UnverifiedServer::new(provider)))
                .with_no_client_auth();
            return Ok(MakeRustlsConnect::new(config));
        }
        let config = builder
            .with_root_certificates(self.roots(root_pem)?)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self, root_pem: Option<&[u8]>) -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        let from_file;
        let pem = match (root_pem, &self.root_cert_file) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => {
                from_file = std::fs::read(path).map_err(|e| {
                    StoreError::with_source("could not read the sslrootcert file", e)
                })?;
                Some(from_file.as_slice())
            }
            (None, None) => None,
        };
        match pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| {
                        StoreError::with_source("the TLS root certificate is not valid PEM", e)
                    })?;
                    roots.add(cert).map_err(|e| {
                        StoreError::with_source("the TLS root certificate was refused", e)
                    })?;
                }
            }
            None => {
                // Unreadable system certificates are skipped; an empty store
                // is refused below.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(StoreError::new(
                "no TLS root certificate to verify PostgreSQL with",
            ));
        }
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_the_only_schemas_accepted() {
        for good in ["tessera", "t_1", "_x", &"a".repeat(63)] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Tessera",
            "1abc",
            "pg_catalog",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            "é",
            &"a".repeat(64),
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sslmodes_parse_and_verify_full_means_require() {
        let mode = |u: &str| parse_url(u).map(|t| t.ssl_mode());
        assert_eq!(mode("postgres://u@h/db").ok(), Some("prefer"));
        assert_eq!(
            mode("postgres://u@h/db?sslmode=disable").ok(),
            Some("disable")
        );
        assert_eq!(
            mode("postgresql://u@h/db?sslmode=require").ok(),
            Some("require")
        );
        assert_eq!(
            mode("postgres://u:p@h:5433/db?connect_timeout=3&sslmode=verify-full").ok(),
            Some("require")
        );
        assert!(mode("postgres://u@h/db?sslmode=verify-ca").is_err());
        assert!(mode("postgres://u@h/db?sslmode=allow").is_err());
        assert!(mode("postgres://u@h/db?sslmode=nonsense").is_err());
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "mysql://u:secret-canary@h/db",
            "postgres://h/db?user=",
            "postgres://u:secret-canary@h/db?bogus_option=1",
            "host=h user=u password=secret-canary",
            "",
        ] {
            let err = parse_url(url).err().expect("refused");
            let text = format!("{err} {err:?}");
            assert!(!text.contains("secret-canary"), "{text}");
        }
    }

    #[test]
    fn driver_parameters_pass_through() {
        let t =
            parse_url("postgres://u@h/db?options=-c%20statement_timeout%3D5000&sslmode=disable")
                .expect("parses");
        assert_eq!(t.config.get_options(), Some("-c statement_timeout=5000"));
    }

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let t = parse_url("postgres://u@h/db?sslrootcert=%2Fetc%2Fca.pem&sslmode=require")
            .expect("parses");
        assert_eq!(t.root_cert_file.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(t.ssl_mode(), "require");
    }

    #[test]
    fn options_debug_shows_no_certificate_bytes() {
        let options = PostgresOptions {
            tls_root_cert: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            ..PostgresOptions::default()
        };
        let text = format!("{options:?}");
        assert!(text.contains("27 bytes of PEM"), "{text}");
        assert!(!text.contains("BEGIN"), "{text}");
    }
}

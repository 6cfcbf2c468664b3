//! TLS against the test server, which serves TLS with a self-signed
//! certificate for `localhost` (Debian's default): `prefer` encrypts
//! without verifying, `require` refuses a certificate it cannot verify, and
//! `verify-full` with that certificate as the root connects, encrypted.

mod support;

use std::path::Path;

use tessera::SessionStore;
use tessera_postgres::PostgresStore;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// Whether every connection named `app` is encrypted, and there is one.
async fn encrypted(app: &str) -> bool {
    support::raw(&support::url().await)
        .await
        .query_one(
            "SELECT count(*) > 0 AND bool_and(s.ssl) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .expect("pg_stat_ssl")
        .get::<_, Option<bool>>(0)
        .unwrap_or(false)
}

/// The test server's URL with `params` added, if it is the local
/// TLS-enabled server this test is about.
async fn local_tls_url(params: &str) -> Option<String> {
    let url = support::url().await;
    let ssl_on = support::raw(&url)
        .await
        .query_one("SHOW ssl", &[])
        .await
        .is_ok_and(|r| r.get::<_, String>(0) == "on");
    if !ssl_on || !url.contains("@127.0.0.1:5432/") || !Path::new(SNAKEOIL).exists() {
        eprintln!("skipped: the test server does not serve TLS with Debian's snakeoil certificate");
        return None;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}{params}"))
}

fn app() -> String {
    support::unique_schema().replace("tessera_test_", "tessera_tls_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_encrypts_without_verifying_a_self_signed_server() {
    let app = app();
    let Some(url) = local_tls_url(&format!("sslmode=prefer&application_name={app}")).await else {
        return;
    };
    let schema = support::unique_schema();
    let store = PostgresStore::connect(&url, support::options(&schema))
        .await
        .expect("prefer connects");
    store.ping().await.expect("ping");
    assert!(encrypted(&app).await, "the connection uses TLS");
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_certificate_it_cannot_verify() {
    let Some(url) = local_tls_url("sslmode=require").await else {
        return;
    };
    let err = PostgresStore::connect(&url, support::options(&support::unique_schema()))
        .await
        .expect_err("a self-signed certificate is not trusted by the system roots");
    let mut text = format!("{err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" {s:?}"));
        source = s.source();
    }
    assert!(text.contains("Certificate"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_root_connects_encrypted() {
    let app = app();
    let Some(url) = local_tls_url(&format!(
        "sslmode=verify-full&sslrootcert={SNAKEOIL}&application_name={app}"
    ))
    .await
    else {
        return;
    };
    // The certificate names localhost, not 127.0.0.1.
    let url = url.replacen("@127.0.0.1:", "@localhost:", 1);
    let schema = support::unique_schema();
    let store = PostgresStore::connect(&url, support::options(&schema))
        .await
        .expect("verify-full with the right root connects");
    store.ping().await.expect("ping");
    assert!(encrypted(&app).await, "the connection uses TLS");

    let pem = std::fs::read(SNAKEOIL).expect("read the certificate");
    let by_option = PostgresStore::connect(
        &url.replace(&format!("&sslrootcert={SNAKEOIL}"), ""),
        tessera_postgres::PostgresOptions {
            tls_root_cert: Some(pem),
            ..support::options(&schema)
        },
    )
    .await
    .expect("the root given as an option works too");
    by_option.ping().await.expect("ping");

    let wrong_host = url.replacen("@localhost:", "@127.0.0.1:", 1);
    assert!(
        PostgresStore::connect(&wrong_host, support::options(&schema))
            .await
            .is_err(),
        "a certificate for another name is refused"
    );
    support::drop_schema(Some(&schema)).await;
}

//! What reaches the logs: categorized errors, and never a secret.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Harness, START};
use tessera::store::SessionStore;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_tampered_record_is_logged_as_an_encryption_error_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::new().await;
    let issued = h.login().await;
    let stored = h
        .store
        .get(&issued.session_id, START)
        .await
        .expect("get")
        .expect("present");
    let mut sealed = stored.sealed.clone();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    h.store
        .compare_and_swap(
            &issued.session_id,
            stored.version,
            sealed,
            stored.expires_at,
            START,
        )
        .await
        .expect("cas");
    assert!(h.validate(&issued.access_token).await.is_err());
    let _ = h.refresh(&issued.refresh_token).await;
    let _ = h.manager.validate_session("garbage.token.here").await;

    let logs = captured.text();
    assert!(logs.contains("ENCRYPTION_ERROR"), "logs: {logs}");
    assert!(logs.contains("TOKEN_ERROR"), "logs: {logs}");
    assert!(logs.contains(&issued.session_id.to_string()));
    for secret in [
        issued.access_token.expose(),
        issued.refresh_token.expose(),
        common::JWT_SECRET,
        common::ENCRYPTION_KEY,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

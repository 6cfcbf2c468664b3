//! `rediss://`: the store talks TLS to a redis-server that serves only TLS,
//! with a certificate from a private CA given in `RedisOptions`, and
//! refuses a server its trusted roots do not vouch for. Certificates are
//! made with the `openssl` command for each run.

mod support;

use std::path::Path;
use std::process::Command;

use tessera::NewSession;
use tessera_redis::{RedisOptions, RedisStore};
use tessera_test_support::RedisServer;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("cert dir");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tessera test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_talk_tls_and_check_the_servers_certificate() {
    let dir = std::env::temp_dir().join(format!("tessera-redis-tls-{}", std::process::id()));
    certificates(&dir);
    let file = |name: &str| dir.join(name).to_str().expect("utf-8").to_owned();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let node = RedisServer::start_tls(&cert, &key, &ca);
    let url = format!("rediss://127.0.0.1:{}", node.port());
    let ca_pem = std::fs::read(&ca).expect("ca.pem");

    let options = RedisOptions {
        prefix: support::unique_prefix(),
        tls_root_cert: Some(ca_pem),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect_with(&url, options)
        .await
        .expect("TLS with the private CA");
    let manager = support::manager(store);
    let (user, org) = (support::random_user(), support::random_org());
    manager
        .set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership over TLS");
    let issued = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("create over TLS");
    manager
        .validate_session(issued.access_token.expose())
        .await
        .expect("validate over TLS");

    // The system's roots do not include the test CA: the handshake fails.
    let untrusted = RedisStore::connect(&url, "tls:").await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown CA must be refused"
    );
    // Plain text to a TLS-only port gets nowhere either.
    let plain = RedisStore::connect(&format!("redis://127.0.0.1:{}", node.port()), "tls:").await;
    assert!(plain.is_err());
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

//! What a client can hold: the real `tessera` binary and real sockets, over
//! HTTP/1.1 and HTTP/2, plain and TLS. Idle connections close at the idle
//! timeout (HTTP/2 pings do not keep one open), a half-sent later request
//! closes at the header deadline, at the cap a new client is served because
//! the oldest idle connections are shed, and the memory many connections
//! took comes back after they close.

mod process;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use process::{Server, write_certificates};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

/// A running service and how to reach it.
struct Target {
    server: Server,
    tls: Option<tokio_rustls::TlsConnector>,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Target {
    fn start(tls: bool, env: &[(&str, &str)]) -> Self {
        if !tls {
            return Self {
                server: Server::start(&["serve", "--dev"], env),
                tls: None,
                _dir: None,
            };
        }
        let dir = process::temp_dir("conn-tls");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (ca, cert, key) = write_certificates(&dir);
        let args = [
            "serve",
            "--dev",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ];
        let server = Server::start(&args, env);
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&ca).expect("ca");
        for c in rustls_pemfile_certs(&pem) {
            roots.add(c).expect("root");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            server,
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            _dir: Some(TempDir(dir)),
        }
    }

    async fn connect(&self, proto: Proto) -> Box<dyn Io> {
        let tcp = TcpStream::connect(self.server.addr())
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let Some(tls) = &self.tls else {
            return Box::new(tcp);
        };
        let mut config = (**tls.config()).clone();
        config.alpn_protocols = vec![match proto {
            Proto::H1 => b"http/1.1".to_vec(),
            Proto::H2 => b"h2".to_vec(),
        }];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        Box::new(connector.connect(name, tcp).await.expect("handshake"))
    }

    /// A connection that has made one request and is now idle.
    async fn idle_connection(&self, proto: Proto) -> Client {
        let io = self.connect(proto).await;
        let mut client = match proto {
            Proto::H1 => Client::H1(io),
            Proto::H2 => Client::h2(io, None).await,
        };
        assert_eq!(client.healthz().await, Some(200));
        client
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let mut client = Client::H1(self.connect(Proto::H1).await);
        let text = client.get("/metrics").await.expect("metrics").1;
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in {text}"))
    }
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.expect("pem"))
        .collect()
}

enum Client {
    H1(Box<dyn Io>),
    H2 {
        sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
        closed: tokio::task::JoinHandle<()>,
    },
}

impl Client {
    async fn h2(io: Box<dyn Io>, ping_every: Option<Duration>) -> Self {
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(hyper_util::rt::TokioTimer::new());
        if let Some(every) = ping_every {
            builder
                .keep_alive_interval(every)
                .keep_alive_while_idle(true);
        }
        let (sender, conn) = builder
            .handshake(TokioIo::new(io))
            .await
            .expect("h2 handshake");
        let closed = tokio::spawn(async move {
            let _ = conn.await;
        });
        Self::H2 { sender, closed }
    }

    async fn healthz(&mut self) -> Option<u16> {
        self.get("/healthz").await.map(|(status, _)| status)
    }

    /// `GET path`: the status and body, or `None` if the connection failed.
    async fn get(&mut self, path: &str) -> Option<(u16, String)> {
        match self {
            Self::H1(io) => {
                let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
                io.write_all(request.as_bytes()).await.ok()?;
                read_h1_response(io).await
            }
            Self::H2 { sender, .. } => {
                let request = hyper::Request::get(format!("https://localhost{path}"))
                    .body(Empty::new())
                    .expect("request");
                let response = sender.send_request(request).await.ok()?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await.ok()?.to_bytes();
                Some((status, String::from_utf8_lossy(&body).into_owned()))
            }
        }
    }

    /// Waits until the server closes the connection; `None` if it is still
    /// open after `within`.
    async fn closed_within(self, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        match self {
            Self::H1(mut io) => {
                let mut buf = [0u8; 1024];
                tokio::time::timeout(within, async {
                    while io.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                })
                .await
                .ok()?;
            }
            Self::H2 { sender, closed } => {
                // Keep the sender: dropping it would close from our side.
                let _sender = sender;
                tokio::time::timeout(within, closed).await.ok()?.ok()?;
            }
        }
        Some(started.elapsed())
    }
}

/// Reads one HTTP/1.1 response with a `content-length`.
async fn read_h1_response(io: &mut Box<dyn Io>) -> Option<(u16, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = &text[..end];
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            let status = head.split(' ').nth(1)?.parse().ok()?;
            return Some((status, text[end + 4..].to_owned()));
        }
    }
}

const TRANSPORTS: [(bool, Proto); 4] = [
    (false, Proto::H1),
    (false, Proto::H2),
    (true, Proto::H1),
    (true, Proto::H2),
];

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_at_the_idle_timeout_and_h2_pings_do_not_keep_them() {
    let env = [("TESSERA_IDLE_TIMEOUT_SECS", "1")];
    for tls in [false, true] {
        let target = Target::start(tls, &env);
        for proto in [Proto::H1, Proto::H2] {
            let client = target.idle_connection(proto).await;
            let took = client
                .closed_within(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{proto:?} tls={tls}: still open after 5 s"));
            assert!(
                took >= Duration::from_millis(700),
                "{proto:?} tls={tls}: closed too early ({took:?})"
            );
        }
        // An HTTP/2 client that pings while idle is closed all the same.
        let io = target.connect(Proto::H2).await;
        let mut client = Client::h2(io, Some(Duration::from_millis(200))).await;
        assert_eq!(client.healthz().await, Some(200));
        let took = client.closed_within(Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "tls={tls}: pings kept an idle h2 connection open"
        );
        assert!(
            target
                .metric("tessera_http_connections_closed_total{reason=\"idle\"}")
                .await
                >= 3.0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_later_request_is_closed_at_the_header_deadline() {
    let env = [
        ("TESSERA_READ_TIMEOUT_SECS", "1"),
        ("TESSERA_IDLE_TIMEOUT_SECS", "60"),
    ];
    for tls in [false, true] {
        let target = Target::start(tls, &env);
        let Client::H1(mut io) = target.idle_connection(Proto::H1).await else {
            unreachable!("an HTTP/1.1 client")
        };
        // The second request's headers start and never finish.
        io.write_all(b"GET /healthz HTTP/1.1\r\nhost: loc")
            .await
            .expect("write");
        let took = Client::H1(io)
            .closed_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("tls={tls}: a half-sent request held the connection"));
        assert!(took >= Duration::from_millis(700), "tls={tls}: {took:?}");
        // A new connection that sends nothing at all meets the same deadline.
        for proto in [Proto::H1, Proto::H2] {
            let io = target.connect(proto).await;
            let took = Client::H1(io).closed_within(Duration::from_secs(5)).await;
            assert!(
                took.is_some(),
                "tls={tls} {proto:?}: a silent connection stayed"
            );
        }
        assert!(
            target
                .metric("tessera_http_connections_closed_total{reason=\"header_timeout\"}")
                .await
                >= 3.0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_the_oldest_idle_connections_are_shed_and_a_new_client_is_served() {
    const CAP: usize = 16;
    let cap = CAP.to_string();
    let env = [("TESSERA_MAX_CONNECTIONS", cap.as_str())];
    for tls in [false, true] {
        let target = Target::start(tls, &env);
        for (t, proto) in TRANSPORTS.iter().filter(|(t, _)| *t == tls) {
            let mut held = Vec::new();
            for _ in 0..2 * CAP {
                held.push(target.idle_connection(*proto).await);
            }
            let started = Instant::now();
            let mut fresh = Client::H1(target.connect(Proto::H1).await);
            let status = tokio::time::timeout(Duration::from_secs(1), fresh.healthz())
                .await
                .unwrap_or_else(|_| panic!("tls={t} {proto:?}: a new client waited over 1 s"));
            assert_eq!(status, Some(200), "tls={t} {proto:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
            // The oldest were shed; the newest are still served.
            let newest = held.last_mut().expect("held");
            assert_eq!(newest.healthz().await, Some(200), "tls={t} {proto:?}");
            let oldest = held.remove(0);
            assert!(
                oldest.closed_within(Duration::from_secs(2)).await.is_some(),
                "tls={t} {proto:?}: the oldest idle connection was not shed"
            );
        }
        let open = target.metric("tessera_http_connections_open").await;
        assert!(open <= (CAP + 1) as f64, "tls={tls}: {open} open");
        assert!(
            target
                .metric("tessera_http_connections_closed_total{reason=\"shed\"}")
                .await
                >= (2 * CAP) as f64
        );
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_many_connections_took_comes_back_after_they_close() {
    const CONNECTIONS: usize = 4_000;
    let target = Target::start(false, &[]);
    let pid = target.server.pid();
    // Warm up: the first requests allocate what every later one reuses.
    for _ in 0..50 {
        drop(target.idle_connection(Proto::H1).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        held.push(target.idle_connection(Proto::H1).await);
    }
    let peak = rss_kib(pid);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = rss_kib(pid);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss_kib(pid);
        if target.metric("tessera_http_connections_open").await <= 1.0
            && after <= before + (peak - before) / 4
        {
            break;
        }
    }
    eprintln!(
        "RSS before {before} KiB, with {CONNECTIONS} connections {peak} KiB, after {after} KiB"
    );
    assert!(peak > before, "the connections took no memory?");
    assert!(
        after <= before + (peak - before) / 4,
        "memory did not come back: before {before} KiB, peak {peak} KiB, after {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_descriptor_limit_is_raised_and_accept_errors_are_counted_and_logged_sparsely() {
    let server = Server::start_under(
        &["prlimit", "--nofile=64:128", "--"],
        &["serve", "--dev"],
        &[
            ("TESSERA_STORE", "memory"),
            ("TESSERA_MAX_CONNECTIONS", "1000"),
            ("RUST_LOG", "info"),
        ],
    );
    let logs = server.logs_with("descriptor_limit");
    assert!(
        logs.contains("descriptor_limit=128"),
        "the soft limit was not raised to the hard one: {logs}"
    );
    // More connections than descriptors: accept fails while they are open.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(server.addr()).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);
    let target = Target {
        server,
        tls: None,
        _dir: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let errors = loop {
        // The service recovers once the descriptors are free again.
        if let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(target.server.addr()),
        )
        .await
        {
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            if matches!(tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
            {
                break target.metric("tessera_http_accept_errors_total").await;
            }
        }
        assert!(Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(errors >= 2.0, "accept errors counted: {errors}");
    let logs = target.server.logs();
    let lines = logs.matches("cannot accept a connection").count();
    assert!(
        (1..=2).contains(&lines),
        "{errors} accept errors gave {lines} log lines"
    );
}

//! A gateway driven without sockets, in the spirit of pgdog's `TestClient`:
//! the test plays both the client and every server. Sessions run over
//! `tokio::io::duplex` pipes; the gateway's pools open their server
//! streams through [`MemoryConnector`], which hands the other end of each
//! pipe to the test. Every read is bounded (5 s), so a test that waits for
//! a message that never comes fails instead of hanging.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use sluice_proxy::balance::hosts::{Health, HostState};
use sluice_proxy::balance::Lsn;
use sluice_proxy::net::{Connecting, Connector, ServerStream};
use sluice_proxy::protocol;
use sluice_proxy::router::HealthChecks;
use sluice_proxy::{Config, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// How long a test waits for any one message.
const PATIENCE: Duration = Duration::from_secs(5);

/// The configuration every scenario starts from: transaction pooling in
/// front of a primary called `primary`, trust authentication.
pub const BASE: &str = r#"
[proxy]
listen_port = 0
auth_type = "trust"
pool_mode = "transaction"
default_pool_size = 2
server_connect_timeout = 5
"#;

/// A connection the gateway opened to a "server".
struct Incoming {
    addr: String,
    stream: DuplexStream,
}

/// Opens in-memory pipes instead of TCP connections and hands the server
/// end of each to the test.
struct MemoryConnector {
    opened: mpsc::UnboundedSender<Incoming>,
}

impl Connector for MemoryConnector {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> Connecting<'a> {
        Box::pin(async move {
            let (gateway_end, server_end) = tokio::io::duplex(1 << 16);
            let incoming = Incoming {
                addr: format!("{host}:{port}"),
                stream: server_end,
            };
            self.opened
                .send(incoming)
                .map_err(|_| std::io::Error::other("the scenario ended"))?;
            Ok(ServerStream::other(gateway_end))
        })
    }
}

/// One gateway, its clients and servers.
pub struct Scenario {
    pub shared: Arc<Shared>,
    opened: mpsc::UnboundedReceiver<Incoming>,
    /// Servers logged in (at a client's login, say) and not yet taken by the test.
    ready: VecDeque<TestServer>,
    next_pid: i32,
}

impl Scenario {
    /// A gateway with `BASE`'s `[proxy]` section plus `proxy` lines, and
    /// `rest` (databases, users, load balancing) after it.
    pub fn new(proxy: &str, rest: &str) -> Scenario {
        // The test's own settings replace the base ones of the same name.
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
        let overridden: Vec<String> = proxy.lines().map(key).collect();
        let base: String = BASE
            .lines()
            .filter(|line| !overridden.contains(&key(line)))
            .map(|line| format!("{line}\n"))
            .collect();
        let text = format!("{base}{proxy}\n{rest}");
        let config = Config::parse(std::path::Path::new("scenario.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (opened, receiver) = mpsc::unbounded_channel();
        let connector = Arc::new(MemoryConnector { opened });
        let shared = Shared::with_connector(Arc::new(config), connector, HealthChecks::Manual)
            .expect("shared state");
        Scenario {
            shared: Arc::new(shared),
            opened: receiver,
            ready: VecDeque::new(),
            next_pid: 1000,
        }
    }

    /// Database `app` on server `primary:5432`, transaction pooling.
    pub fn simple(proxy: &str) -> Scenario {
        Scenario::new(proxy, "[databases.app]\nhost = \"primary\"\nport = 5432\n")
    }

    /// Database `app` with two replicas and load balancing on; every host
    /// is staged up, the replicas having replayed `0/100`.
    pub fn balanced(load_balancing: &str) -> Scenario {
        let scenario = Scenario::new(
            "",
            &format!(
                "[databases.app]\nhost = \"primary\"\nport = 5432\n\
                 replicas = [\"replica1:5432\", \"replica2:5432\"]\n\n\
                 [load_balancing]\nenabled = true\n{load_balancing}\n"
            ),
        );
        let db = scenario
            .shared
            .router
            .database("app")
            .expect("balanced")
            .clone();
        db.hosts.primary().mark_up(health(false, 0x100));
        for replica in db.hosts.replicas() {
            replica.mark_up(health(true, 0x100));
        }
        scenario
    }

    /// A client logged in as `app` to `app` (any server connection the
    /// gateway opens meanwhile is logged in and kept for [`Scenario::server`]).
    pub async fn client(&mut self) -> TestClient {
        self.client_with(&[]).await
    }

    /// A client with extra startup parameters.
    pub async fn client_with(&mut self, params: &[(&str, &str)]) -> TestClient {
        let mut client = self.start_client(params).await;
        loop {
            tokio::select! {
                message = client.recv() => match message.tag {
                    b'Z' => return client,
                    b'E' => panic!("login failed: {}", message.error_message()),
                    _ => client.login_messages.push(message),
                },
                Some(incoming) = self.opened.recv() => {
                    let server = self.log_in_server(incoming).await;
                    self.ready.push_back(server);
                }
            }
        }
    }

    /// A console client (database `pgbouncer`) logged in as `user`.
    pub async fn console(&mut self, user: &str) -> TestClient {
        let mut client = self
            .start_client(&[("user", user), ("database", "pgbouncer")])
            .await;
        client.finish_login().await;
        client
    }

    /// A client whose startup packet was sent; nothing read yet.
    pub async fn start_client(&mut self, params: &[(&str, &str)]) -> TestClient {
        let (gateway_end, mut ours) = tokio::io::duplex(1 << 16);
        self.spawn_session(gateway_end);
        // The gateway reads the first of a repeated name: the test's win.
        let mut startup = params.to_vec();
        startup.extend_from_slice(&[("user", "app"), ("database", "app")]);
        let mut buf = BytesMut::new();
        protocol::startup_message(&mut buf, &startup);
        ours.write_all(&buf).await.unwrap();
        TestClient {
            stream: ours,
            buf: BytesMut::new(),
            login_messages: Vec::new(),
        }
    }

    /// A connection that sends a CancelRequest with this key.
    pub async fn start_cancel(&mut self, pid: i32, secret: i32) -> TestClient {
        let (gateway_end, mut ours) = tokio::io::duplex(1 << 16);
        self.spawn_session(gateway_end);
        let mut buf = BytesMut::new();
        protocol::cancel_request(&mut buf, pid, secret);
        ours.write_all(&buf).await.unwrap();
        TestClient {
            stream: ours,
            buf: BytesMut::new(),
            login_messages: Vec::new(),
        }
    }

    /// Serves `gateway_end` as the accept loop serves a TCP client (its task
    /// can be closed from outside, as `KILL_CLIENT` does).
    fn spawn_session(&self, gateway_end: DuplexStream) {
        let accepted = sluice_proxy::frontend::Accepted::default();
        let abort = accepted.abort.clone();
        let task = tokio::spawn(sluice_proxy::frontend::serve(
            gateway_end,
            self.shared.clone(),
            accepted,
        ));
        let _ = abort.set(task.abort_handle());
    }

    /// The next server connection the gateway opened (logged in).
    pub async fn server(&mut self) -> TestServer {
        if let Some(server) = self.ready.pop_front() {
            return server;
        }
        let incoming = bounded("a server connection", self.opened.recv())
            .await
            .expect("connector alive");
        self.log_in_server(incoming).await
    }

    /// Whether the gateway opened a server connection the test has not taken.
    pub fn has_unclaimed_server(&mut self) -> bool {
        !self.ready.is_empty() || !self.opened.is_empty()
    }

    /// The next raw connection the gateway opened (not logged in: a
    /// CancelRequest, say), with the address it went to.
    pub async fn raw_connection(&mut self) -> (String, DuplexStream) {
        let incoming = bounded("a connection", self.opened.recv())
            .await
            .expect("connector alive");
        (incoming.addr, incoming.stream)
    }

    async fn log_in_server(&mut self, incoming: Incoming) -> TestServer {
        self.next_pid += 1;
        let mut server = TestServer {
            addr: incoming.addr,
            stream: incoming.stream,
            buf: BytesMut::new(),
            pid: self.next_pid,
            startup: Vec::new(),
        };
        server.startup = server.read_startup().await;
        let mut out = BytesMut::new();
        protocol::authentication(&mut out, protocol::AUTH_OK, &[]);
        for (name, value) in [
            ("server_version", "15.8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("application_name", "sluice"),
        ] {
            protocol::parameter_status(&mut out, name, value);
        }
        protocol::backend_key_data(&mut out, server.pid, 77);
        protocol::ready_for_query(&mut out, protocol::TxStatus::Idle);
        server.send(&out).await;
        server
    }

    /// Database `app`'s host table.
    pub fn hosts(&self) -> Arc<sluice_proxy::balance::hosts::Hosts> {
        self.shared
            .router
            .database("app")
            .expect("balanced")
            .hosts
            .clone()
    }

    /// The primary's pool of `app`/`app`.
    pub fn pool(&self) -> Arc<sluice_proxy::pool::Pool> {
        self.shared
            .pools
            .get(&self.shared.config(), "app", "app")
            .expect("pool")
    }
}

/// A host that answered its check: a standby (`in_recovery`) that replayed
/// `lsn`, or a primary at `lsn`.
pub fn health(in_recovery: bool, lsn: u64) -> Health {
    Health {
        state: HostState::Up,
        in_recovery: Some(in_recovery),
        wal_lsn: Some(Lsn(lsn)),
        lag_bytes: Some(0),
        lag: Some(Duration::ZERO),
        ..Health::default()
    }
}

/// Waits for `future` at most `PATIENCE`, naming what did not come.
pub async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// One whole message (either direction): its tag and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// The first NUL-terminated string of the body (a Query's SQL, a
    /// Parse's statement name, a CommandComplete's tag).
    pub fn text(&self) -> String {
        let end = self
            .body
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.body.len());
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }

    /// The second NUL-terminated string (a Parse's query, a Bind's statement).
    pub fn second_text(&self) -> String {
        let start = self.body.iter().position(|&b| b == 0).map_or(0, |i| i + 1);
        let rest = &self.body[start..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    }

    pub fn error_code(&self) -> String {
        protocol::decode_error_fields(&self.body).code
    }

    pub fn error_message(&self) -> String {
        protocol::decode_error_fields(&self.body).message
    }

    /// A DataRow's first column as text.
    pub fn first_column(&self) -> Option<String> {
        protocol::data_row_first_column(&self.body)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// The tags of `messages` as a string, e.g. `"TDCZ"`.
pub fn tags(messages: &[Msg]) -> String {
    messages.iter().map(|m| m.tag as char).collect()
}

/// Reads exactly `n` bytes.
pub async fn read_exact(stream: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    bounded("bytes", stream.read_exact(&mut out))
        .await
        .expect("read");
    out
}

/// Reads one whole tagged message from `stream` into `buf`'s front.
async fn read_message(stream: &mut DuplexStream, buf: &mut BytesMut, who: &str) -> Msg {
    loop {
        if buf.len() >= 5 {
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() > len {
                let message = buf.split_to(len + 1);
                return Msg {
                    tag: message[0],
                    body: message[5..].to_vec(),
                };
            }
        }
        let read = bounded(&format!("a message from {who}"), stream.read_buf(buf)).await;
        if read.expect("read") == 0 {
            panic!(
                "{who} closed the connection (pending bytes: {:?})",
                &buf[..]
            );
        }
    }
}

/// The test's side of a client connection.
pub struct TestClient {
    pub stream: DuplexStream,
    buf: BytesMut,
    /// What came before the login's ReadyForQuery (AuthenticationOk,
    /// ParameterStatus, BackendKeyData).
    pub login_messages: Vec<Msg>,
}

impl TestClient {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("client write");
    }

    /// Sends a simple Query.
    pub async fn query(&mut self, sql: &str) {
        let mut buf = BytesMut::new();
        protocol::query(&mut buf, sql);
        self.send(&buf).await;
    }

    pub async fn recv(&mut self) -> Msg {
        read_message(&mut self.stream, &mut self.buf, "the gateway (client side)").await
    }

    /// Finishes a login begun with [`Scenario::start_client`].
    pub async fn finish_login(&mut self) {
        loop {
            let message = self.recv().await;
            match message.tag {
                b'Z' => return,
                b'E' => panic!("login failed: {}", message.error_message()),
                _ => self.login_messages.push(message),
            }
        }
    }

    /// The column names and type OIDs of a RowDescription.
    pub fn columns(description: &Msg) -> Vec<(String, i32)> {
        assert_eq!(description.tag, b'T', "{description:?}");
        let body = &description.body;
        let count = i16::from_be_bytes([body[0], body[1]]) as usize;
        let mut at = 2;
        let mut columns = Vec::new();
        for _ in 0..count {
            let end = at + body[at..].iter().position(|&b| b == 0).expect("name");
            let name = String::from_utf8_lossy(&body[at..end]).into_owned();
            let oid = i32::from_be_bytes(body[end + 7..end + 11].try_into().unwrap());
            columns.push((name, oid));
            at = end + 19;
        }
        columns
    }

    /// Every DataRow's values as text (`None` for NULL).
    pub fn rows(messages: &[Msg]) -> Vec<Vec<Option<String>>> {
        messages
            .iter()
            .filter(|m| m.tag == b'D')
            .map(|m| {
                let body = &m.body;
                let count = i16::from_be_bytes([body[0], body[1]]) as usize;
                let mut at = 2;
                (0..count)
                    .map(|_| {
                        let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                        at += 4;
                        if len < 0 {
                            return None;
                        }
                        let value =
                            String::from_utf8_lossy(&body[at..at + len as usize]).into_owned();
                        at += len as usize;
                        Some(value)
                    })
                    .collect()
            })
            .collect()
    }

    /// Reads until at least `n` bytes arrived (whole messages or not).
    pub async fn read_at_least(&mut self, n: usize) {
        while self.buf.len() < n {
            let read = bounded("client bytes", self.stream.read_buf(&mut self.buf)).await;
            assert!(read.expect("read") > 0, "the gateway closed the client");
        }
    }

    /// Every message up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<Msg> {
        let mut messages = Vec::new();
        loop {
            let message = self.recv().await;
            let ready = message.tag == b'Z';
            messages.push(message);
            if ready {
                return messages;
            }
        }
    }

    /// Reads messages until the gateway closes the connection.
    pub async fn until_closed(&mut self) -> Vec<Msg> {
        let mut messages = Vec::new();
        loop {
            if self.buf.len() >= 5 {
                messages.push(self.recv().await);
                continue;
            }
            let read = bounded("the gateway to close", self.stream.read_buf(&mut self.buf)).await;
            if read.unwrap_or(0) == 0 {
                return messages;
            }
        }
    }

    /// Nothing arrives within `wait`.
    pub async fn assert_silent(&mut self, wait: Duration) {
        let mut probe = [0u8; 1];
        if let Ok(read) = tokio::time::timeout(wait, self.stream.read(&mut probe)).await {
            panic!("the client got something unexpected: {read:?} {probe:?}");
        }
    }

    /// The cancel key the gateway gave this client (from BackendKeyData).
    pub fn cancel_key(&self) -> (i32, i32) {
        let key = self
            .login_messages
            .iter()
            .find(|m| m.tag == b'K')
            .expect("BackendKeyData");
        let b = &key.body;
        (
            i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        )
    }
}

/// The test's side of one server connection.
pub struct TestServer {
    /// Where the gateway connected (`primary:5432`, `replica1:5432`, ...).
    pub addr: String,
    pub stream: DuplexStream,
    buf: BytesMut,
    /// The BackendKeyData pid it gave.
    pub pid: i32,
    /// The gateway's startup parameters.
    pub startup: Vec<(String, String)>,
}

impl TestServer {
    async fn read_startup(&mut self) -> Vec<(String, String)> {
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() >= len {
                    let packet = self.buf.split_to(len);
                    let fields: Vec<String> = packet[8..]
                        .split(|&b| b == 0)
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    return fields
                        .chunks(2)
                        .filter(|pair| pair.len() == 2 && !pair[0].is_empty())
                        .map(|pair| (pair[0].clone(), pair[1].clone()))
                        .collect();
                }
            }
            let read = bounded("a startup packet", self.stream.read_buf(&mut self.buf)).await;
            assert!(
                read.expect("read") > 0,
                "the gateway closed before its startup packet"
            );
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("server write");
    }

    pub async fn recv(&mut self) -> Msg {
        let who = format!("the gateway (server {} side)", self.addr);
        read_message(&mut self.stream, &mut self.buf, &who).await
    }

    /// Reads `expected.len()` messages and checks their tags.
    pub async fn expect(&mut self, expected: &str) -> Vec<Msg> {
        let mut messages = Vec::new();
        for _ in 0..expected.len() {
            messages.push(self.recv().await);
        }
        assert_eq!(
            tags(&messages),
            expected,
            "messages the server got: {messages:?}"
        );
        messages
    }

    /// Reads one simple Query and returns its SQL.
    pub async fn expect_query(&mut self) -> String {
        self.expect("Q").await.remove(0).text()
    }

    /// Answers a simple query that returned one text column `value`.
    pub async fn answer_value(&mut self, column: &str, value: &str, status: protocol::TxStatus) {
        let mut out = BytesMut::new();
        protocol::text_result(
            &mut out,
            &[column],
            &[vec![Some(value.to_string())]],
            "SELECT 1",
        );
        protocol::ready_for_query(&mut out, status);
        self.send(&out).await;
    }

    /// Answers a command (`INSERT 0 1`, `BEGIN`, ...) then ReadyForQuery.
    pub async fn answer_command(&mut self, tag: &str, status: protocol::TxStatus) {
        let mut out = BytesMut::new();
        protocol::command_complete(&mut out, tag);
        protocol::ready_for_query(&mut out, status);
        self.send(&out).await;
    }

    /// Nothing arrives from the gateway within `wait`.
    pub async fn assert_silent(&mut self, wait: Duration) {
        assert!(self.buf.is_empty(), "pending: {:?}", &self.buf[..]);
        let mut probe = [0u8; 1];
        if let Ok(read) = tokio::time::timeout(wait, self.stream.read(&mut probe)).await {
            panic!(
                "server {} got something unexpected: {read:?} {probe:?}",
                self.addr
            );
        }
    }
}

// ---- message builders ----------------------------------------------------

pub fn query(sql: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::query(&mut buf, sql);
    buf
}

pub fn parse(name: &str, sql: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::parse(&mut buf, name.as_bytes(), sql.as_bytes(), &[0, 0]);
    buf
}

/// A Bind of statement `name` to the unnamed portal, no parameters.
pub fn bind(name: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::bind(&mut buf, b"", name.as_bytes(), &[0, 0, 0, 0, 0, 0]);
    buf
}

/// Execute the unnamed portal, all rows.
pub fn execute() -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u8(b'E');
    buf.put_i32(9);
    buf.put_u8(0);
    buf.put_i32(0);
    buf
}

pub fn close_statement(name: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::describe_or_close(&mut buf, b'C', b'S', name.as_bytes());
    buf
}

pub fn sync() -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::sync(&mut buf);
    buf
}

/// Concatenates messages into one write.
pub fn batch(parts: &[BytesMut]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// A server message with no body (ParseComplete `1`, BindComplete `2`, ...).
pub fn empty(tag: u8) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::empty_message(&mut buf, tag);
    buf
}

pub fn ready(status: protocol::TxStatus) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::ready_for_query(&mut buf, status);
    buf
}

pub fn error(severity: &str, code: &str, message: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::error_response(&mut buf, severity, code, message);
    buf
}

pub fn command_complete(tag: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::command_complete(&mut buf, tag);
    buf
}

pub fn parameter_status(name: &str, value: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    protocol::parameter_status(&mut buf, name, value);
    buf
}

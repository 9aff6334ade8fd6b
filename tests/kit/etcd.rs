//! A real etcd server for the fleet tests: Debian's `etcd` (package `etcd-server`, which `.ci/run`
//! installs), started per test on free loopback ports with a fresh data directory, and stopped or
//! restarted (same data, same port) when a test asks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One etcd member, killed when dropped.
pub struct Etcd {
    child: Option<Child>,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts etcd (`$HOTRELOAD_TEST_ETCD_BIN`, or `etcd` on the `PATH`) and waits until it is healthy.
    pub fn start() -> Self {
        let mut etcd = Etcd {
            child: None,
            data: tempfile::Builder::new()
                .prefix("hotpatch-etcd-")
                .tempdir()
                .unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.spawn();
        etcd
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let binary = std::env::var_os("HOTRELOAD_TEST_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("etcd"));
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&binary)
            .args(["--name", "fleet-test", "--data-dir"])
            .arg(self.data.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("fleet-test={peer}")])
            .args(["--log-outputs", "stderr", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start etcd ({}): {error}; install Debian's `etcd-server` (as .ci/run does) or set HOTRELOAD_TEST_ETCD_BIN", binary.display())
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "etcd at {client} was not healthy within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        self.http("GET", "/health", "")
            .is_some_and(|reply| reply.contains("\"health\":\"true\""))
    }

    /// How many keys start with `prefix` (through etcd's JSON gateway).
    pub fn count(&self, prefix: &str) -> usize {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        let body = format!(
            "{{\"key\":\"{}\",\"range_end\":\"{}\",\"count_only\":true}}",
            base64(prefix.as_bytes()),
            base64(&end)
        );
        let reply = self
            .http("POST", "/v3/kv/range", &body)
            .expect("etcd answers a range request");
        let json = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        value["count"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Writes `value` at `key` (through etcd's JSON gateway), as anyone who can reach etcd may.
    pub fn put(&self, key: &str, value: &[u8]) {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value)
        );
        let reply = self
            .http("POST", "/v3/kv/put", &body)
            .expect("etcd answers a put");
        assert!(reply.contains("200 OK"), "etcd refused the put: {reply}");
    }

    /// One HTTP/1.0 exchange with the client port; the whole reply.
    fn http(&self, method: &str, path: &str, body: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.client_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        Some(reply)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Standard base64 with padding (what etcd's JSON gateway takes for bytes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

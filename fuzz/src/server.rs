//! The control server's request reading, over a real socket: the runtime's own server runs in
//! this process (one per process, started on first use) and each input is one connection's bytes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use hotreload_runtime::wire::protocol::Response;

/// How long the server may take to answer a connection's lines and close it.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn socket() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hotreload-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz socket's directory");
        let path = dir.join("control.sock");
        hotreload_runtime::control::serve(&path).expect("starting the control server");
        path
    })
}

/// Sends `data` on a new connection and reads every answer: each is one line holding a
/// [`Response`], the server answers at most one line per line sent (plus one refusal) and closes
/// the connection once the input ends; then it still answers `hello`.
pub fn control_server(data: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket()).expect("connecting to the control server");
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    stream.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
    // The server stops reading (and closes) after a malformed line: the rest may not be taken.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut kinds = Vec::new();
    for line in BufReader::new(&stream).lines() {
        let line = match line {
            Ok(line) => line,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("reading the server's answers: {error}"),
        };
        let response: Response = serde_json::from_str(&line).unwrap_or_else(|error| {
            panic!("the server answered `{line}`, not a response: {error}")
        });
        kinds.push(match response {
            Response::Ok(_) => "ok".to_owned(),
            // The server turns a panic while answering into this step: a finding all the same.
            Response::Error(error) if error.step == "internal" => {
                panic!("the server panicked answering the input: {}", error.message)
            }
            Response::Error(error) => error.step,
        });
    }
    let lines = data.split(|&b| b == b'\n').count();
    assert!(
        kinds.len() <= lines + 1,
        "{} answers to {lines} lines: {kinds:?}",
        kinds.len()
    );
    still_answers_hello();
    kinds.truncate(3);
    kinds.join(" ")
}

fn still_answers_hello() {
    let mut stream = UnixStream::connect(socket()).expect("connecting to the control server");
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    stream.write_all(b"{\"command\":\"hello\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert!(
        matches!(serde_json::from_str(&line), Ok(Response::Ok(_))),
        "after the input the server answers hello with `{line}`"
    );
}

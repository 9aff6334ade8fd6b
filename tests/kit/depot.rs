//! The realistic example `examples/depot` (see [`crate::Fixture::depot`]) run by the tool, and a
//! client of it: one request line, one reply line, over a real TCP connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::{read_lines, Fixture, ToolRun};

/// The depot run by `cargo hotpatch COMMAND` (`run` or `watch`), with its snapshot in a directory
/// of the test's; ended when dropped.
pub struct RunningDepot {
    pub run: ToolRun,
    pub address: String,
    _lines: Receiver<String>,
    _data: tempfile::TempDir,
}

impl RunningDepot {
    /// Starts `cargo hotpatch COMMAND` of the depot and waits for it to say where it listens.
    pub fn start(fixture: &mut Fixture, command: &str) -> Self {
        let data = tempfile::tempdir().expect("a directory for the snapshot");
        let snapshot = data.path().join("snapshot.json");
        fixture.set_env("DEPOT_SNAPSHOT", snapshot.to_str().unwrap());
        let (mut run, stdout) = ToolRun::start(fixture, command, &[]);
        let lines = read_lines(stdout);
        let first = lines
            .recv_timeout(fixture.profile().first_build())
            .unwrap_or_else(|_| {
                panic!(
                    "the depot never said where it listens:\n{}",
                    run.stderr_tail()
                )
            });
        let address = listening_address(&first);
        run.adopt_app();
        RunningDepot {
            run,
            address,
            _lines: lines,
            _data: data,
        }
    }
}

/// Asks `request` until the reply is `expected` (a patch is being built and applied meanwhile),
/// for at most `within`; panics with the last reply and `describe()` otherwise.
pub fn ask_until(
    client: &mut Client,
    request: &str,
    expected: &str,
    within: Duration,
    describe: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    loop {
        let reply = client.ask(request);
        if reply == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{request}` still answers {reply:?}, not {expected:?}\n{}",
            describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address in the depot's first line, `depot listening on ADDRESS`.
pub fn listening_address(first_line: &str) -> String {
    first_line
        .strip_prefix("depot listening on ")
        .unwrap_or_else(|| panic!("unexpected first line of the depot: {first_line}"))
        .to_owned()
}

/// A client connection: one request line, one reply line.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).expect("connecting to the depot");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send(&mut self, request: &str) {
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending `{request}`: {e}"));
    }

    pub fn line(&mut self) -> String {
        let mut reply = String::new();
        let read = self
            .reader
            .read_line(&mut reply)
            .unwrap_or_else(|e| panic!("reading from the depot: {e}"));
        assert!(read > 0, "the depot closed the connection");
        reply.trim_end().to_owned()
    }

    pub fn ask(&mut self, request: &str) -> String {
        self.send(request);
        self.line()
    }
}

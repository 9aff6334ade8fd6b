//! A client of the realistic example `examples/depot` (see [`crate::Fixture::depot`]): one
//! request line, one reply line, over a real TCP connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

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

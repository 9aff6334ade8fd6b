//! A small async client for the text protocol: what the tests use, and what a Rust service
//! talking to a depot would.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::protocol::reply::quote;
use crate::protocol::tokenize;
use crate::util::backoff::{retry, Backoff, RetryError, RetryPolicy};

/// Why a request failed on the client's side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        source: RetryError<std::io::Error>,
    },
    #[error("talking to the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server answered `{0}`")]
    Server(String),
    #[error("unexpected reply `{0}`")]
    Unexpected(String),
}

/// A connection to a depot server.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects, retrying while the server is not up yet (connection refused).
    pub async fn connect(address: &str) -> Result<Client, ClientError> {
        let policy = RetryPolicy {
            attempts: 8,
            backoff: Backoff::exact(25, 1_000),
        };
        let stream = retry(
            &policy,
            |_| TcpStream::connect(address),
            |error| error.kind() == std::io::ErrorKind::ConnectionRefused,
        )
        .await
        .map_err(|source| ClientError::Connect {
            address: address.to_owned(),
            source,
        })?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(reader),
            writer,
        })
    }

    /// Sends one request line and returns the reply line as the server wrote it.
    pub async fn raw(&mut self, line: &str) -> Result<String, ClientError> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.write_all(b"\n").await?;
        self.next_line().await
    }

    /// The next line from the server (a reply, or a pushed message).
    pub async fn next_line(&mut self) -> Result<String, ClientError> {
        let mut reply = String::new();
        if self.reader.read_line(&mut reply).await? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(reply.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// The next line within `timeout`, or `None`.
    pub async fn next_line_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<String>, ClientError> {
        match tokio::time::timeout(timeout, self.next_line()).await {
            Ok(line) => line.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sends a command made of `words` (quoted as needed); a `-ERR` reply is an error.
    pub async fn call(&mut self, words: &[&str]) -> Result<String, ClientError> {
        let line: Vec<String> = words.iter().map(|word| quote(word)).collect();
        let reply = self.raw(&line.join(" ")).await?;
        if reply.starts_with("-ERR") {
            return Err(ClientError::Server(reply));
        }
        Ok(reply)
    }

    pub async fn get(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        let reply = self.call(&["GET", key]).await?;
        match reply.strip_prefix('$') {
            Some(value) => Ok(Some(value.replace("\\n", "\n").replace("\\\\", "\\"))),
            None if reply == "_" => Ok(None),
            None => Err(ClientError::Unexpected(reply)),
        }
    }

    pub async fn set(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        match self.call(&["SET", key, value]).await?.as_str() {
            "+OK" => Ok(()),
            other => Err(ClientError::Unexpected(other.to_owned())),
        }
    }

    pub async fn incr(&mut self, key: &str, by: i64) -> Result<i64, ClientError> {
        let reply = self.call(&["INCRBY", key, &by.to_string()]).await?;
        integer(&reply)
    }

    /// Pushes a job; returns its id.
    pub async fn push(&mut self, queue: &str, payload: &str) -> Result<u64, ClientError> {
        let reply = self.call(&["PUSH", queue, payload]).await?;
        integer(&reply).map(|id| id as u64)
    }

    /// Reserves a job, waiting up to `wait`; its id and payload.
    pub async fn reserve(
        &mut self,
        queue: &str,
        wait: Duration,
    ) -> Result<Option<(u64, String)>, ClientError> {
        let wait = wait.as_millis().to_string();
        let reply = self.call(&["RESERVE", queue, "WAIT", &wait]).await?;
        if reply == "_" {
            return Ok(None);
        }
        // `=job ID QUEUE attempts=N PAYLOAD`
        let words = tokenize(reply.strip_prefix('=').unwrap_or(&reply))
            .map_err(|_| ClientError::Unexpected(reply.clone()))?;
        match words.as_slice() {
            [job, id, _, _, payload] if job == "job" => {
                let id = id
                    .parse()
                    .map_err(|_| ClientError::Unexpected(reply.clone()))?;
                Ok(Some((id, payload.clone())))
            }
            _ => Err(ClientError::Unexpected(reply)),
        }
    }

    pub async fn ack(&mut self, job: u64) -> Result<(), ClientError> {
        self.call(&["ACK", &job.to_string()]).await.map(drop)
    }
}

fn integer(reply: &str) -> Result<i64, ClientError> {
    reply
        .strip_prefix(':')
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| ClientError::Unexpected(reply.to_owned()))
}

//! A TCP gateway holding long-lived client connections, each with a `#[hot_state]` session.
//!
//! `GATEWAY_ADDR` sets the address (default `127.0.0.1:7878`; port 0 picks one); the first line on
//! stdout says where it listens. See the README for a patch to try while clients stay connected.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    hotreload_runtime::init();
    let address = std::env::var("GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:7878".to_owned());
    let listener = TcpListener::bind(&address).await?;
    println!("gateway listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = serve(stream, peer).await {
                eprintln!("gateway: connection from {peer}: {error}");
            }
        });
    }
}

/// One connection: a session for its whole life, one reply per request line.
async fn serve(stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let session = gateway::open_session(peer.to_string());
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        // Lock the session, then call the hot handler: a patch cannot swap the handler and migrate
        // the session between the two, so the handler always matches the session's version.
        let mut reply = {
            let mut session = session.lock();
            gateway::handle(&mut session, &line)
        };
        reply.push('\n');
        writer.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

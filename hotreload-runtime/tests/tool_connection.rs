//! `control::connect`: the process connects to the tool's socket, both prove they know the
//! secret the tool gave it, and it answers the tool's requests there; a listener without the
//! secret is refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;

use hotreload_runtime::hot;
use hotreload_runtime::wire::protocol::{
    link_proof, LinkHandshake, LinkRole, Reply, Request, Response, TOOL_SECRET_ENV,
};

#[hot]
fn listed() -> u32 {
    1
}

#[test]
fn the_process_connects_to_the_tool_and_serves_its_requests() {
    assert_eq!(listed(), 1);
    let path =
        std::env::temp_dir().join(format!("hotreload-tool-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let secret = "a secret only the tool and its app know";
    std::env::set_var(TOOL_SECRET_ENV, secret);
    hotreload_runtime::control::connect(&path).unwrap();
    assert_ne!(
        std::env::var(TOOL_SECRET_ENV).unwrap(),
        secret,
        "the secret is wiped from the environment once read"
    );
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let theirs: LinkHandshake = serde_json::from_str(&line).unwrap();
    let mut ours = serde_json::to_string(&LinkHandshake {
        challenge: Some("00ff".into()),
        proof: Some(link_proof(
            secret,
            LinkRole::Tool,
            theirs.challenge.as_deref().unwrap(),
        )),
    })
    .unwrap();
    ours.push('\n');
    reader.get_mut().write_all(ours.as_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    let answer: LinkHandshake = serde_json::from_str(&line).unwrap();
    assert_eq!(
        answer.proof.as_deref(),
        Some(link_proof(secret, LinkRole::App, "00ff").as_str())
    );

    let mut ask = |request: &Request| {
        let mut line = serde_json::to_string(request).unwrap();
        line.push('\n');
        reader.get_mut().write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        serde_json::from_str::<Response>(&answer).unwrap()
    };
    match ask(&Request::Hello) {
        Response::Ok(Reply::Hello { pid, build_id, .. }) => {
            assert_eq!(pid, std::process::id());
            assert_eq!(build_id, hotreload_runtime::build_id().unwrap());
        }
        other => panic!("hello answered {other:?}"),
    }
    // The same connection carries further requests.
    match ask(&Request::Status) {
        Response::Ok(Reply::Status(status)) => assert!(
            status
                .functions
                .iter()
                .any(|f| f.key == "tool_connection::listed"),
            "{status:?}"
        ),
        other => panic!("status answered {other:?}"),
    }
    let _ = std::fs::remove_file(&path);
    a_listener_without_the_secret_is_refused();
}

/// A process listening at the tool's path that cannot prove the secret gets no service: the app
/// closes the connection after the listener's proof, answering nothing.
fn a_listener_without_the_secret_is_refused() {
    let path =
        std::env::temp_dir().join(format!("hotreload-fake-tool-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    std::env::set_var(TOOL_SECRET_ENV, "the app's real secret");
    hotreload_runtime::control::connect(&path).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let theirs: LinkHandshake = serde_json::from_str(&line).unwrap();
    let forged = LinkHandshake {
        challenge: Some("00ff".into()),
        proof: Some(link_proof(
            "a guessed secret",
            LinkRole::Tool,
            theirs.challenge.as_deref().unwrap(),
        )),
    };
    let mut text = serde_json::to_string(&forged).unwrap();
    text.push('\n');
    text.push_str("{\"command\":\"hello\"}\n");
    reader.get_mut().write_all(text.as_bytes()).unwrap();
    line.clear();
    let read = reader.read_line(&mut line).unwrap_or(0);
    assert_eq!(
        read, 0,
        "the app answered a tool without the secret: {line}"
    );
    let _ = std::fs::remove_file(&path);
}

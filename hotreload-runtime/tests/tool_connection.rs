//! `control::connect`: the process connects to the tool's socket and answers its requests there.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;

use hotreload_runtime::hot;
use hotreload_runtime::wire::protocol::{Reply, Request, Response};

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
    hotreload_runtime::control::connect(&path).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream);

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
}

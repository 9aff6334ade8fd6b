//! The audit log: every control request, as one JSON line with who, what, the result and timing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

#[test]
fn every_request_is_one_json_line_in_the_audit_log() {
    let dir = std::env::temp_dir().join(format!("hotreload-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.jsonl");
    let socket = dir.join("control.sock");
    // Read once, at the first request: set before any.
    std::env::set_var("HOTRELOAD_AUDIT_LOG", &log);
    hotreload_runtime::control::serve(&socket).unwrap();

    let ask = |line: &str| {
        let stream = UnixStream::connect(&socket).unwrap();
        (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).unwrap();
        answer
    };
    ask(r#"{"command":"hello"}"#);
    ask(r#"{"command":"check","path":"/nonexistent/p.hotpatch"}"#);
    ask(r#"{"command":"explode"}"#);

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(entries.len(), 3, "{text}");
    // SAFETY: `geteuid` has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for entry in &entries {
        assert_eq!(entry["peer"]["uid"], uid, "{entry}");
        assert_eq!(entry["peer"]["pid"], std::process::id(), "{entry}");
        assert!(entry["time_unix_ms"].as_u64().unwrap() > 0, "{entry}");
        assert!(entry["took_us"].is_u64(), "{entry}");
    }
    assert_eq!(entries[0]["command"], "hello");
    assert_eq!(entries[0]["result"], "ok");
    assert_eq!(entries[1]["command"], "check");
    assert_eq!(entries[1]["path"], "/nonexistent/p.hotpatch");
    assert_eq!(entries[1]["result"], "error");
    assert_eq!(entries[1]["step"], "read");
    assert_eq!(entries[2]["command"], "malformed");
    assert_eq!(entries[2]["step"], "request");
    let _ = std::fs::remove_dir_all(&dir);
}

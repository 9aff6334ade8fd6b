//! `init()` with `HOTRELOAD_CONTROL_SOCKET` opens the control socket, served by a thread named
//! `hotreload-control`; calling it again changes nothing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use hotreload_runtime::wire::protocol::{Reply, Request, Response};

#[test]
fn init_opens_the_control_socket_named_in_the_environment() {
    let socket =
        std::env::temp_dir().join(format!("hotreload-test-{}-init.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    std::env::set_var("HOTRELOAD_CONTROL_SOCKET", &socket);
    hotreload_runtime::init();
    hotreload_runtime::init();

    let stream = UnixStream::connect(&socket).expect("init opened the socket");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    writeln!(
        writer,
        "{}",
        serde_json::to_string(&Request::Hello).unwrap()
    )
    .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let response: Response = serde_json::from_str(&line).unwrap();
    assert!(
        matches!(response, Response::Ok(Reply::Hello { pid, .. }) if pid == std::process::id()),
        "{response:?}"
    );

    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    // The kernel keeps 15 bytes of a thread's name.
    let serving = threads.iter().filter(|n| *n == "hotreload-contr").count();
    assert_eq!(serving, 1, "{threads:?}");
    let _ = std::fs::remove_file(&socket);
}

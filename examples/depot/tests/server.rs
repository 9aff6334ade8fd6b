//! The server over real sockets: a client talks to a `Server` bound on a free port.

use std::time::Duration;

use depot::client::Client;
use depot::{Config, Server};
use tokio::sync::oneshot;

/// A server on a free port without snapshots; stops when the returned sender is dropped.
async fn start(configure: impl FnOnce(&mut Config)) -> (String, oneshot::Sender<()>) {
    let mut config = Config {
        listen: "127.0.0.1:0".to_owned(),
        ..Config::default()
    };
    config.snapshot.path = None;
    configure(&mut config);
    let server = Server::bind(config).await.unwrap();
    let address = server.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (address, stop)
}

#[tokio::test]
async fn keys_jobs_and_messages_over_tcp() {
    let (address, _stop) = start(|_| {}).await;
    let mut client = Client::connect(&address).await.unwrap();
    client.set("greeting", "hello world").await.unwrap();
    assert_eq!(
        client.get("greeting").await.unwrap().as_deref(),
        Some("hello world")
    );
    assert_eq!(client.incr("n", 3).await.unwrap(), 3);

    let mut worker = Client::connect(&address).await.unwrap();
    let waiting = tokio::spawn(async move {
        let job = worker
            .reserve("mail", Duration::from_secs(5))
            .await
            .unwrap();
        (worker, job)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = client.push("mail", "to ada").await.unwrap();
    let (mut worker, job) = waiting.await.unwrap();
    assert_eq!(job, Some((id, "to ada".to_owned())));
    worker.ack(id).await.unwrap();

    let mut subscriber = Client::connect(&address).await.unwrap();
    assert_eq!(subscriber.raw("SUBSCRIBE news").await.unwrap(), ":1");
    assert_eq!(client.raw("PUBLISH news \"it works\"").await.unwrap(), ":1");
    assert_eq!(subscriber.next_line().await.unwrap(), ">news \"it works\"");
    let json = client
        .raw(r#"{"cmd":"get","key":"n","id":4}"#)
        .await
        .unwrap();
    assert_eq!(json, r#"{"id":4,"ok":true,"result":"3"}"#);
    assert_eq!(client.raw("QUIT").await.unwrap(), "+BYE");
}

#[tokio::test]
async fn a_disconnected_worker_gives_its_job_back() {
    let (address, _stop) = start(|config| config.queue.backoff.initial_ms = 1).await;
    let mut producer = Client::connect(&address).await.unwrap();
    producer.push("q", "work").await.unwrap();
    let mut worker = Client::connect(&address).await.unwrap();
    let (id, _) = worker
        .reserve("q", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    drop(worker);
    let mut second = Client::connect(&address).await.unwrap();
    let again = second.reserve("q", Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.map(|(job, _)| job), Some(id));
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let (address, _stop) = start(|config| config.auth_token = Some("t0ken".into())).await;
    let mut client = Client::connect(&address).await.unwrap();
    assert_eq!(
        client.raw("GET k").await.unwrap(),
        "-ERR auth say `AUTH <token>` first"
    );
    assert_eq!(client.raw("AUTH t0ken").await.unwrap(), "+OK");
    assert_eq!(client.raw("GET k").await.unwrap(), "_");
}

#[tokio::test]
async fn shutdown_says_goodbye_to_connected_clients() {
    let (address, stop) = start(|_| {}).await;
    let mut client = Client::connect(&address).await.unwrap();
    assert_eq!(client.raw("PING").await.unwrap(), "+PONG");
    drop(stop);
    let line = client
        .next_line_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(line.as_deref(), Some("+BYE"));
}

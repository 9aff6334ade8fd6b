//! Every command the server understands, as a typed value. The JSON syntax is this enum's serde
//! form (`{"cmd":"incr","key":"n","by":2}`); the text syntax is parsed in [`super::text`].

use serde::{Deserialize, Serialize};

use crate::queue::PushOptions;
use crate::store::kv::End;
use crate::store::SetCondition;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Ping {
        #[serde(default)]
        message: Option<String>,
    },
    /// Names the client (shown in logs and `WHOAMI`; workers reserve jobs under it).
    Hello {
        client: String,
    },
    Auth {
        token: String,
    },
    Quit,

    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
        #[serde(default)]
        ttl_ms: Option<u64>,
        #[serde(default)]
        condition: SetCondition,
    },
    Del {
        keys: Vec<String>,
    },
    Incr {
        key: String,
        #[serde(default = "one")]
        by: i64,
    },
    Append {
        key: String,
        value: String,
    },
    Expire {
        key: String,
        /// None removes the expiry (`PERSIST`).
        ttl_ms: Option<u64>,
    },
    Ttl {
        key: String,
    },
    Keys {
        pattern: String,
    },
    ListPush {
        key: String,
        end: End,
        values: Vec<String>,
    },
    ListPop {
        key: String,
        end: End,
    },
    ListRange {
        key: String,
        start: i64,
        stop: i64,
    },

    Push {
        queue: String,
        payload: String,
        #[serde(default)]
        options: PushOptions,
    },
    Reserve {
        queue: String,
        /// How long to wait for a job if none is ready; none answers at once.
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    Ack {
        job: u64,
    },
    Nack {
        job: u64,
        #[serde(default)]
        reason: String,
    },
    Retry {
        job: u64,
    },
    QueueStats {
        queue: String,
    },
    Dead {
        queue: String,
    },
    Queues,

    Publish {
        topic: String,
        message: String,
    },
    Subscribe {
        topics: Vec<String>,
    },
    Unsubscribe {
        /// Empty: every topic.
        #[serde(default)]
        topics: Vec<String>,
    },
    Topics,

    Info,
    Stats,
    Whoami,
    Save,
}

fn one() -> i64 {
    1
}

/// A command's kind without its arguments: what metrics count and spans are named by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Ping,
    Hello,
    Auth,
    Quit,
    Get,
    Set,
    Del,
    Incr,
    Append,
    Expire,
    Ttl,
    Keys,
    ListPush,
    ListPop,
    ListRange,
    Push,
    Reserve,
    Ack,
    Nack,
    Retry,
    QueueStats,
    Dead,
    Queues,
    Publish,
    Subscribe,
    Unsubscribe,
    Topics,
    Info,
    Stats,
    Whoami,
    Save,
}

impl CommandKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [CommandKind; 31] = [
        CommandKind::Ping,
        CommandKind::Hello,
        CommandKind::Auth,
        CommandKind::Quit,
        CommandKind::Get,
        CommandKind::Set,
        CommandKind::Del,
        CommandKind::Incr,
        CommandKind::Append,
        CommandKind::Expire,
        CommandKind::Ttl,
        CommandKind::Keys,
        CommandKind::ListPush,
        CommandKind::ListPop,
        CommandKind::ListRange,
        CommandKind::Push,
        CommandKind::Reserve,
        CommandKind::Ack,
        CommandKind::Nack,
        CommandKind::Retry,
        CommandKind::QueueStats,
        CommandKind::Dead,
        CommandKind::Queues,
        CommandKind::Publish,
        CommandKind::Subscribe,
        CommandKind::Unsubscribe,
        CommandKind::Topics,
        CommandKind::Info,
        CommandKind::Stats,
        CommandKind::Whoami,
        CommandKind::Save,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Ping => "ping",
            CommandKind::Hello => "hello",
            CommandKind::Auth => "auth",
            CommandKind::Quit => "quit",
            CommandKind::Get => "get",
            CommandKind::Set => "set",
            CommandKind::Del => "del",
            CommandKind::Incr => "incr",
            CommandKind::Append => "append",
            CommandKind::Expire => "expire",
            CommandKind::Ttl => "ttl",
            CommandKind::Keys => "keys",
            CommandKind::ListPush => "list_push",
            CommandKind::ListPop => "list_pop",
            CommandKind::ListRange => "list_range",
            CommandKind::Push => "push",
            CommandKind::Reserve => "reserve",
            CommandKind::Ack => "ack",
            CommandKind::Nack => "nack",
            CommandKind::Retry => "retry",
            CommandKind::QueueStats => "queue_stats",
            CommandKind::Dead => "dead",
            CommandKind::Queues => "queues",
            CommandKind::Publish => "publish",
            CommandKind::Subscribe => "subscribe",
            CommandKind::Unsubscribe => "unsubscribe",
            CommandKind::Topics => "topics",
            CommandKind::Info => "info",
            CommandKind::Stats => "stats",
            CommandKind::Whoami => "whoami",
            CommandKind::Save => "save",
        }
    }

    /// Whether a client may send it before `AUTH` on a server that wants a token.
    pub fn allowed_before_auth(self) -> bool {
        matches!(
            self,
            CommandKind::Ping | CommandKind::Hello | CommandKind::Auth | CommandKind::Quit
        )
    }

    /// Whether it changes the store or the queues (what the snapshot writer cares about).
    pub fn writes(self) -> bool {
        matches!(
            self,
            CommandKind::Set
                | CommandKind::Del
                | CommandKind::Incr
                | CommandKind::Append
                | CommandKind::Expire
                | CommandKind::ListPush
                | CommandKind::ListPop
                | CommandKind::Push
                | CommandKind::Reserve
                | CommandKind::Ack
                | CommandKind::Nack
                | CommandKind::Retry
        )
    }
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Ping { .. } => CommandKind::Ping,
            Command::Hello { .. } => CommandKind::Hello,
            Command::Auth { .. } => CommandKind::Auth,
            Command::Quit => CommandKind::Quit,
            Command::Get { .. } => CommandKind::Get,
            Command::Set { .. } => CommandKind::Set,
            Command::Del { .. } => CommandKind::Del,
            Command::Incr { .. } => CommandKind::Incr,
            Command::Append { .. } => CommandKind::Append,
            Command::Expire { .. } => CommandKind::Expire,
            Command::Ttl { .. } => CommandKind::Ttl,
            Command::Keys { .. } => CommandKind::Keys,
            Command::ListPush { .. } => CommandKind::ListPush,
            Command::ListPop { .. } => CommandKind::ListPop,
            Command::ListRange { .. } => CommandKind::ListRange,
            Command::Push { .. } => CommandKind::Push,
            Command::Reserve { .. } => CommandKind::Reserve,
            Command::Ack { .. } => CommandKind::Ack,
            Command::Nack { .. } => CommandKind::Nack,
            Command::Retry { .. } => CommandKind::Retry,
            Command::QueueStats { .. } => CommandKind::QueueStats,
            Command::Dead { .. } => CommandKind::Dead,
            Command::Queues => CommandKind::Queues,
            Command::Publish { .. } => CommandKind::Publish,
            Command::Subscribe { .. } => CommandKind::Subscribe,
            Command::Unsubscribe { .. } => CommandKind::Unsubscribe,
            Command::Topics => CommandKind::Topics,
            Command::Info => CommandKind::Info,
            Command::Stats => CommandKind::Stats,
            Command::Whoami => CommandKind::Whoami,
            Command::Save => CommandKind::Save,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_table() {
        for (index, kind) in CommandKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index, "{kind:?}");
        }
    }

    #[test]
    fn json_defaults() {
        let command: Command = serde_json::from_str(r#"{"cmd":"incr","key":"n"}"#).unwrap();
        assert_eq!(
            command,
            Command::Incr {
                key: "n".into(),
                by: 1
            }
        );
        let command: Command =
            serde_json::from_str(r#"{"cmd":"push","queue":"q","payload":"p"}"#).unwrap();
        assert_eq!(command.kind(), CommandKind::Push);
        assert!(command.kind().writes());
        assert!(!CommandKind::Get.writes());
    }
}

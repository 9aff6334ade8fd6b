//! The key-value commands.

use std::time::Duration;

use hotreload_runtime::hot;
use tracing::debug;

use crate::error::DepotError;
use crate::protocol::{Command, Reply};
use crate::service::Depot;
use crate::store::Value;
use crate::util::clock::Millis;

/// Answers a key-value command.
#[tracing::instrument(level = "debug", skip_all, fields(cmd = command.kind().name()))]
#[hot]
pub fn handle(depot: &Depot, command: &Command, now: Millis) -> Reply {
    let store = &depot.store;
    let result: Result<Reply, DepotError> = match command {
        Command::Get { key } => store
            .get(key, now)
            .map(|value| value.map_or(Reply::Nil, Reply::Text)),
        Command::Set {
            key,
            value,
            ttl_ms,
            condition,
        } => {
            let ttl = ttl_ms.map(Duration::from_millis);
            let written = store.set(key, Value::from_input(value), ttl, *condition, now);
            debug!(key, written, "set");
            Ok(if written { Reply::Ok } else { Reply::Nil })
        }
        Command::Del { keys } => Ok(Reply::Int(store.delete(keys, now) as i64)),
        Command::Incr { key, by } => store.increment(key, *by, now).map(Reply::Int),
        Command::Append { key, value } => store
            .append(key, value, now)
            .map(|length| Reply::Int(length as i64)),
        Command::Expire { key, ttl_ms } => {
            let changed = store.expire(key, ttl_ms.map(Duration::from_millis), now);
            Ok(Reply::Int(i64::from(changed)))
        }
        Command::Ttl { key } => Ok(match store.ttl(key, now) {
            None => Reply::Int(-2),
            Some(None) => Reply::Int(-1),
            Some(Some(left)) => Reply::Int(left.as_millis() as i64),
        }),
        Command::Keys { pattern } => Ok(Reply::List(store.keys(pattern, now))),
        Command::ListPush { key, end, values } => store
            .push(key, *end, values, now)
            .map(|length| Reply::Int(length as i64)),
        Command::ListPop { key, end } => store
            .pop(key, *end, now)
            .map(|item| item.map_or(Reply::Nil, Reply::Text)),
        Command::ListRange { key, start, stop } => {
            store.range(key, *start, *stop, now).map(Reply::List)
        }
        other => Err(DepotError::State(format!(
            "`{}` is not a key-value command",
            other.kind().name()
        ))),
    };
    result.into()
}

#[cfg(test)]
mod tests {
    use crate::handlers::tests::{depot, reply};
    use crate::session;

    #[test]
    fn a_conversation() {
        let depot = depot();
        let session = session::open(1, "peer".into(), false, 0);
        let said = |line: &str| reply(&depot, &session, line);
        assert_eq!(said("SET greeting \"hello world\""), "+OK");
        assert_eq!(said("GET greeting"), "$hello world");
        assert_eq!(said("SET greeting again NX"), "_");
        assert_eq!(said("INCRBY visits 5"), ":5");
        assert_eq!(said("DECR visits"), ":4");
        assert_eq!(
            said("INCR greeting"),
            "-ERR value value at `greeting` is not an integer"
        );
        assert_eq!(said("RPUSH todo milk \"bread and butter\""), ":2");
        assert_eq!(said("LRANGE todo 0 -1"), "*2 milk \"bread and butter\"");
        assert_eq!(
            said("GET todo"),
            "-ERR wrongtype value at `todo` holds a list, not text"
        );
        assert_eq!(said("LPOP todo"), "$milk");
        assert_eq!(said("TTL greeting"), ":-1");
        assert_eq!(said("TTL nothing"), ":-2");
        assert_eq!(said("PEXPIRE greeting 1500"), ":1");
        assert_eq!(said("TTL greeting"), ":1500");
        assert_eq!(said("KEYS v*"), "*1 visits");
        assert_eq!(said("DEL greeting visits nothing"), ":2");
    }
}

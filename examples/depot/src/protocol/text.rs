//! The text syntax: a command word and its arguments separated by spaces; an argument with spaces
//! is written in double quotes, with `\"`, `\\` and `\n` escapes. Command words and option words
//! (`EX`, `NX`, `WAIT`, ...) are case-insensitive.

use crate::queue::PushOptions;
use crate::store::kv::End;
use crate::store::SetCondition;

use super::tokens::{tokenize, Args};
use super::Command;

/// Why a line is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty request")]
    Empty,
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("`{command}` takes {expected}")]
    Arguments {
        command: &'static str,
        expected: &'static str,
    },
    #[error("`{0}` is not a number")]
    Number(String),
    #[error("unknown option `{option}` for `{command}`")]
    Option {
        command: &'static str,
        option: String,
    },
    #[error("unterminated quote")]
    UnterminatedQuote,
    #[error("invalid JSON request: {0}")]
    Json(String),
}

/// Parses a text request.
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    let mut words = tokenize(line)?.into_iter();
    let name = words.next().ok_or(ParseError::Empty)?.to_ascii_uppercase();
    let Some((command, usage)) = GRAMMAR.iter().find(|(word, _)| *word == name) else {
        return Err(ParseError::UnknownCommand(name));
    };
    let mut args = Args {
        command,
        usage,
        words: words.collect::<Vec<_>>().into_iter(),
    };
    let parsed = match *command {
        "PING" => Command::Ping {
            message: args.optional(),
        },
        "HELLO" => Command::Hello {
            client: args.next()?,
        },
        "AUTH" => Command::Auth {
            token: args.next()?,
        },
        "QUIT" => Command::Quit,
        "SET" => return parse_set(args),
        "PUSH" => return parse_push(args),
        "RESERVE" => return parse_reserve(args),
        "NACK" => {
            let job = args.number()?;
            return Ok(Command::Nack {
                job,
                reason: args.rest().join(" "),
            });
        }
        _ => parse_simple(command, &mut args)?,
    };
    args.done()?;
    Ok(parsed)
}

/// The key-value commands whose arguments are a fixed list of words.
fn parse_simple(command: &str, args: &mut Args) -> Result<Command, ParseError> {
    Ok(match command {
        "GET" => Command::Get { key: args.next()? },
        "DEL" => Command::Del {
            keys: args.at_least_one()?,
        },
        "INCR" => Command::Incr {
            key: args.next()?,
            by: 1,
        },
        "DECR" => Command::Incr {
            key: args.next()?,
            by: -1,
        },
        "INCRBY" => Command::Incr {
            key: args.next()?,
            by: args.number()?,
        },
        "APPEND" => Command::Append {
            key: args.next()?,
            value: args.next()?,
        },
        "EXPIRE" => Command::Expire {
            key: args.next()?,
            ttl_ms: Some(args.number::<u64>()?.saturating_mul(1000)),
        },
        "PEXPIRE" => Command::Expire {
            key: args.next()?,
            ttl_ms: Some(args.number()?),
        },
        "PERSIST" => Command::Expire {
            key: args.next()?,
            ttl_ms: None,
        },
        "TTL" => Command::Ttl { key: args.next()? },
        "KEYS" => Command::Keys {
            pattern: args.optional().unwrap_or_else(|| "*".to_owned()),
        },
        "LPUSH" | "RPUSH" => Command::ListPush {
            key: args.next()?,
            end: if command == "LPUSH" {
                End::Left
            } else {
                End::Right
            },
            values: args.at_least_one()?,
        },
        "LPOP" | "RPOP" => Command::ListPop {
            key: args.next()?,
            end: if command == "LPOP" {
                End::Left
            } else {
                End::Right
            },
        },
        "LRANGE" => Command::ListRange {
            key: args.next()?,
            start: args.number()?,
            stop: args.number()?,
        },
        _ => parse_queue_or_admin(command, args)?,
    })
}

/// The queue, pub-sub and admin commands whose arguments are a fixed list of words.
fn parse_queue_or_admin(command: &str, args: &mut Args) -> Result<Command, ParseError> {
    Ok(match command {
        "ACK" => Command::Ack {
            job: args.number()?,
        },
        "RETRY" => Command::Retry {
            job: args.number()?,
        },
        "QSTATS" => Command::QueueStats {
            queue: args.next()?,
        },
        "DEAD" => Command::Dead {
            queue: args.next()?,
        },
        "QUEUES" => Command::Queues,
        "PUBLISH" => Command::Publish {
            topic: args.next()?,
            message: args.next()?,
        },
        "SUBSCRIBE" => Command::Subscribe {
            topics: args.at_least_one()?,
        },
        "UNSUBSCRIBE" => Command::Unsubscribe {
            topics: args.rest(),
        },
        "TOPICS" => Command::Topics,
        "INFO" => Command::Info,
        "STATS" => Command::Stats,
        "WHOAMI" => Command::Whoami,
        "SAVE" => Command::Save,
        other => unreachable!("`{other}` is in the grammar but not parsed"),
    })
}

/// `SET key value [EX seconds | PX millis] [NX | XX]`
fn parse_set(mut args: Args) -> Result<Command, ParseError> {
    let key = args.next()?;
    let value = args.next()?;
    let mut ttl_ms = None;
    let mut condition = SetCondition::Always;
    while let Some(option) = args.optional() {
        match option.to_ascii_uppercase().as_str() {
            "EX" => ttl_ms = Some(args.number::<u64>()?.saturating_mul(1000)),
            "PX" => ttl_ms = Some(args.number()?),
            "NX" => condition = SetCondition::IfAbsent,
            "XX" => condition = SetCondition::IfPresent,
            _ => return Err(args.unknown_option(option)),
        }
    }
    Ok(Command::Set {
        key,
        value,
        ttl_ms,
        condition,
    })
}

/// `PUSH queue payload [PRIORITY n] [DELAY millis] [ATTEMPTS n]`
fn parse_push(mut args: Args) -> Result<Command, ParseError> {
    let queue = args.next()?;
    let payload = args.next()?;
    let mut options = PushOptions::default();
    while let Some(option) = args.optional() {
        match option.to_ascii_uppercase().as_str() {
            "PRIORITY" => options.priority = args.number()?,
            "DELAY" => options.delay_ms = args.number()?,
            "ATTEMPTS" => options.max_attempts = args.number()?,
            _ => return Err(args.unknown_option(option)),
        }
    }
    Ok(Command::Push {
        queue,
        payload,
        options,
    })
}

/// `RESERVE queue [WAIT millis]`
fn parse_reserve(mut args: Args) -> Result<Command, ParseError> {
    let queue = args.next()?;
    let mut wait_ms = None;
    while let Some(option) = args.optional() {
        match option.to_ascii_uppercase().as_str() {
            "WAIT" => wait_ms = Some(args.number()?),
            _ => return Err(args.unknown_option(option)),
        }
    }
    Ok(Command::Reserve { queue, wait_ms })
}

/// Every command word with its usage, as errors and `HELP` show it.
pub const GRAMMAR: &[(&str, &str)] = &[
    ("PING", "an optional message"),
    ("HELLO", "a client name"),
    ("AUTH", "a token"),
    ("QUIT", "no arguments"),
    ("GET", "a key"),
    (
        "SET",
        "a key, a value, then optionally EX seconds or PX millis, and NX or XX",
    ),
    ("DEL", "one or more keys"),
    ("INCR", "a key"),
    ("DECR", "a key"),
    ("INCRBY", "a key and an integer"),
    ("APPEND", "a key and a value"),
    ("EXPIRE", "a key and seconds"),
    ("PEXPIRE", "a key and milliseconds"),
    ("PERSIST", "a key"),
    ("TTL", "a key"),
    ("KEYS", "an optional pattern (`*` matches anything)"),
    ("LPUSH", "a key and one or more values"),
    ("RPUSH", "a key and one or more values"),
    ("LPOP", "a key"),
    ("RPOP", "a key"),
    ("LRANGE", "a key, a start and a stop index"),
    (
        "PUSH",
        "a queue, a payload, then optionally PRIORITY n, DELAY millis, ATTEMPTS n",
    ),
    ("RESERVE", "a queue, then optionally WAIT millis"),
    ("ACK", "a job id"),
    ("NACK", "a job id and an optional reason"),
    ("RETRY", "a dead job's id"),
    ("QSTATS", "a queue"),
    ("DEAD", "a queue"),
    ("QUEUES", "no arguments"),
    ("PUBLISH", "a topic and a message"),
    ("SUBSCRIBE", "one or more topics"),
    ("UNSUBSCRIBE", "topics, or none for all"),
    ("TOPICS", "no arguments"),
    ("INFO", "no arguments"),
    ("STATS", "no arguments"),
    ("WHOAMI", "no arguments"),
    ("SAVE", "no arguments"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_options() {
        assert_eq!(
            parse_line("set k v ex 2 nx").unwrap(),
            Command::Set {
                key: "k".into(),
                value: "v".into(),
                ttl_ms: Some(2000),
                condition: SetCondition::IfAbsent,
            }
        );
        assert_eq!(
            parse_line("PUSH emails hi PRIORITY 9 DELAY 100").unwrap(),
            Command::Push {
                queue: "emails".into(),
                payload: "hi".into(),
                options: PushOptions {
                    priority: 9,
                    delay_ms: 100,
                    max_attempts: 0
                },
            }
        );
        assert_eq!(
            parse_line("NACK 4 disk full").unwrap(),
            Command::Nack {
                job: 4,
                reason: "disk full".into()
            }
        );
        assert_eq!(
            parse_line("decr n").unwrap(),
            Command::Incr {
                key: "n".into(),
                by: -1
            }
        );
        assert_eq!(
            parse_line("KEYS").unwrap(),
            Command::Keys {
                pattern: "*".into()
            }
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert_eq!(parse_line(""), Err(ParseError::Empty));
        assert_eq!(
            parse_line("FLY away"),
            Err(ParseError::UnknownCommand("FLY".into()))
        );
        assert_eq!(
            parse_line("GET").unwrap_err().to_string(),
            "`GET` takes a key"
        );
        assert_eq!(
            parse_line("GET a b").unwrap_err().to_string(),
            "`GET` takes a key"
        );
        assert_eq!(
            parse_line("INCRBY n lots"),
            Err(ParseError::Number("lots".into()))
        );
        assert_eq!(
            parse_line("RESERVE q SOON 5").unwrap_err().to_string(),
            "unknown option `SOON` for `RESERVE`"
        );
    }

    #[test]
    fn every_command_word_parses() {
        let examples = [
            "PING",
            "HELLO w",
            "AUTH t",
            "QUIT",
            "GET k",
            "SET k v",
            "DEL k",
            "INCR k",
            "DECR k",
            "INCRBY k 2",
            "APPEND k v",
            "EXPIRE k 1",
            "PEXPIRE k 1",
            "PERSIST k",
            "TTL k",
            "KEYS",
            "LPUSH k v",
            "RPUSH k v",
            "LPOP k",
            "RPOP k",
            "LRANGE k 0 1",
            "PUSH q p",
            "RESERVE q",
            "ACK 1",
            "NACK 1",
            "RETRY 1",
            "QSTATS q",
            "DEAD q",
            "QUEUES",
            "PUBLISH t m",
            "SUBSCRIBE t",
            "UNSUBSCRIBE",
            "TOPICS",
            "INFO",
            "STATS",
            "WHOAMI",
            "SAVE",
        ];
        assert_eq!(examples.len(), GRAMMAR.len());
        for example in examples {
            parse_line(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }
}

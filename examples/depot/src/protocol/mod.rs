//! The wire protocol: one request per line, one reply line per request (plus pushed `>message`
//! lines while subscribed).
//!
//! A request is either text, `SET greeting "hello world" EX 60`, or a JSON object,
//! `{"cmd":"set","key":"greeting","value":"hello world","ttl_ms":60000,"id":7}`; a JSON request
//! gets a JSON reply carrying its `id`. Both parse to the same [`Command`].

pub mod command;
pub mod reply;
pub mod text;
pub mod tokens;

pub use command::{Command, CommandKind};
pub use reply::{JobView, Reply};
pub use text::{parse_line, ParseError};
pub use tokens::tokenize;

use serde::{Deserialize, Serialize};

/// How a request was written, so its reply is written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    Text,
    Json,
}

/// A JSON request: a command and an optional id echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonRequest {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub command: Command,
}

/// One parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: Command,
    pub syntax: Syntax,
    pub id: Option<u64>,
}

impl Request {
    /// Parses a line in either syntax: JSON if it starts with `{`.
    pub fn parse(line: &str) -> Result<Request, (Syntax, ParseError)> {
        let trimmed = line.trim();
        if trimmed.starts_with('{') {
            serde_json::from_str::<JsonRequest>(trimmed)
                .map(|request| Request {
                    command: request.command,
                    syntax: Syntax::Json,
                    id: request.id,
                })
                .map_err(|error| (Syntax::Json, ParseError::Json(error.to_string())))
        } else {
            parse_line(trimmed)
                .map(|command| Request {
                    command,
                    syntax: Syntax::Text,
                    id: None,
                })
                .map_err(|error| (Syntax::Text, error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SetCondition;

    #[test]
    fn both_syntaxes_parse_to_the_same_command() {
        let text = Request::parse("SET greeting \"hello world\" PX 60000").unwrap();
        let json = Request::parse(
            r#"{"cmd":"set","key":"greeting","value":"hello world","ttl_ms":60000,"id":7}"#,
        )
        .unwrap();
        assert_eq!(text.command, json.command);
        assert_eq!((text.syntax, json.syntax), (Syntax::Text, Syntax::Json));
        assert_eq!(json.id, Some(7));
        assert_eq!(
            json.command,
            Command::Set {
                key: "greeting".into(),
                value: "hello world".into(),
                ttl_ms: Some(60_000),
                condition: SetCondition::Always,
            }
        );
    }

    #[test]
    fn bad_json_says_what_is_wrong() {
        let (syntax, error) = Request::parse(r#"{"cmd":"fly"}"#).unwrap_err();
        assert_eq!(syntax, Syntax::Json);
        assert!(
            error.to_string().contains("unknown variant `fly`"),
            "{error}"
        );
    }
}

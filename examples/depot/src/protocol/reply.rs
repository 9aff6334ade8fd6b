//! Replies and how they are written.
//!
//! Text replies are one line, starting with a sigil as in Redis: `+OK`, `+PONG`, `$value`, `:42`,
//! `_` (nothing), `*2 a "b c"` (a list, items quoted when needed), `#{...}` (a JSON document),
//! `-ERR code message`, and `>topic payload` for a pushed message. JSON replies are an object
//! with `ok`, the request's `id`, and `result` or `error`.

use serde::Serialize;
use serde_json::json;

use crate::error::{DepotError, ErrorCode};
use crate::pubsub::Message;
use crate::queue::Job;

use super::Syntax;

/// What a job looks like to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: u64,
    pub queue: String,
    pub payload: String,
    pub attempts: u32,
    pub state: &'static str,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.0,
            queue: job.queue.clone(),
            payload: job.payload.clone(),
            attempts: job.attempts,
            state: job.state.name(),
        }
    }
}

/// The answer to one request, or a message pushed to a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    Pong(Option<String>),
    Text(String),
    Int(i64),
    Nil,
    List(Vec<String>),
    Job(JobView),
    /// A document: stats, info, queue counts.
    Doc(serde_json::Value),
    Error {
        code: ErrorCode,
        message: String,
    },
    Message(Message),
    Bye,
}

impl From<DepotError> for Reply {
    fn from(error: DepotError) -> Self {
        Reply::Error {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<Result<Reply, DepotError>> for Reply {
    fn from(result: Result<Reply, DepotError>) -> Self {
        result.unwrap_or_else(Reply::from)
    }
}

impl Reply {
    pub fn doc(value: &impl Serialize) -> Reply {
        match serde_json::to_value(value) {
            Ok(value) => Reply::Doc(value),
            Err(error) => Reply::Error {
                code: ErrorCode::Internal,
                message: format!("serialising the reply: {error}"),
            },
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error { .. })
    }

    /// The reply as a line (without its newline), in the syntax of the request.
    pub fn render(&self, syntax: Syntax, id: Option<u64>) -> String {
        match syntax {
            Syntax::Text => self.to_text(),
            Syntax::Json => self.to_json(id).to_string(),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Reply::Ok => "+OK".to_owned(),
            Reply::Pong(None) => "+PONG".to_owned(),
            Reply::Pong(Some(message)) => format!("+PONG {}", quote(message)),
            Reply::Text(text) => format!("${}", escape(text)),
            Reply::Int(number) => format!(":{number}"),
            Reply::Nil => "_".to_owned(),
            Reply::List(items) => {
                let mut line = format!("*{}", items.len());
                for item in items {
                    line.push(' ');
                    line.push_str(&quote(item));
                }
                line
            }
            Reply::Job(job) => format!(
                "=job {} {} attempts={} {}",
                job.id,
                job.queue,
                job.attempts,
                quote(&job.payload)
            ),
            Reply::Doc(value) => format!("#{value}"),
            Reply::Error { code, message } => format!("-ERR {code} {}", escape(message)),
            Reply::Message(message) => {
                format!(">{} {}", message.topic, quote(&message.payload))
            }
            Reply::Bye => "+BYE".to_owned(),
        }
    }

    pub fn to_json(&self, id: Option<u64>) -> serde_json::Value {
        let result = match self {
            Reply::Error { code, message } => {
                return json!({"id": id, "ok": false, "error": {"code": code, "message": message}})
            }
            Reply::Message(message) => return json!({"message": message}),
            Reply::Ok | Reply::Bye => json!("OK"),
            Reply::Pong(message) => json!(message.as_deref().unwrap_or("PONG")),
            Reply::Text(text) => json!(text),
            Reply::Int(number) => json!(number),
            Reply::Nil => serde_json::Value::Null,
            Reply::List(items) => json!(items),
            Reply::Job(job) => json!(job),
            Reply::Doc(value) => value.clone(),
        };
        json!({"id": id, "ok": true, "result": result})
    }
}

/// Keeps a reply on one line.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// An item as the tokenizer reads it back: bare if it can be, else quoted.
pub fn quote(item: &str) -> String {
    let bare = !item.is_empty()
        && !item
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\');
    if bare {
        return item.to_owned();
    }
    let mut quoted = String::with_capacity(item.len() + 2);
    quoted.push('"');
    for c in item.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tokenize;

    #[test]
    fn text_replies() {
        assert_eq!(Reply::Ok.to_text(), "+OK");
        assert_eq!(Reply::Int(-3).to_text(), ":-3");
        assert_eq!(Reply::Text("a\nb".into()).to_text(), "$a\\nb");
        assert_eq!(
            Reply::List(vec!["a".into(), "b c".into(), String::new()]).to_text(),
            "*3 a \"b c\" \"\""
        );
        let error = Reply::from(DepotError::NoSuchJob(7));
        assert_eq!(error.to_text(), "-ERR notfound no job 7");
    }

    #[test]
    fn quoted_items_read_back() {
        for item in [
            "plain",
            "with space",
            "quo\"te",
            "back\\slash",
            "line\nbreak",
            "",
        ] {
            assert_eq!(tokenize(&quote(item)).unwrap(), [item]);
        }
    }

    #[test]
    fn json_replies_carry_the_id() {
        let ok = Reply::Int(5).render(Syntax::Json, Some(9));
        assert_eq!(ok, r#"{"id":9,"ok":true,"result":5}"#);
        let error = Reply::from(DepotError::AuthRequired).to_json(None);
        assert_eq!(error["error"]["code"], "auth");
        assert_eq!(error["ok"], false);
    }
}

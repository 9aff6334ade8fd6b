//! What a key holds, and the small enums of the key-value commands.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Value {
    Text(String),
    Int(i64),
    List(VecDeque<String>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Int(_) => "an integer",
            Value::List(_) => "a list",
        }
    }

    /// The value as a client reads it with `GET`: lists are not readable that way.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Text(text) => Some(text.clone()),
            Value::Int(number) => Some(number.to_string()),
            Value::List(_) => None,
        }
    }

    /// Text that looks like an integer is stored as one, so `SET n 5` then `INCR n` works.
    pub fn from_input(text: &str) -> Value {
        match text.parse::<i64>() {
            Ok(number) if number.to_string() == text => Value::Int(number),
            _ => Value::Text(text.to_owned()),
        }
    }
}

/// When `SET` may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetCondition {
    #[default]
    Always,
    /// `NX`: only if the key is absent.
    IfAbsent,
    /// `XX`: only if the key is there.
    IfPresent,
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    Left,
    Right,
}

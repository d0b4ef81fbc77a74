//! Reading script replies without trusting them.

use std::borrow::Cow;

use redis::Value;

use bananas_core::{Error, Result};

/// The elements of an array reply (an empty list for nil).
pub(crate) fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Nil => Vec::new(),
        other => vec![other],
    }
}

/// A reply element as bytes (integers are formatted).
pub(crate) fn bytes(v: &Value) -> Option<Cow<'_, [u8]>> {
    match v {
        Value::BulkString(b) => Some(Cow::Borrowed(b)),
        Value::SimpleString(s) => Some(Cow::Borrowed(s.as_bytes())),
        Value::Int(i) => Some(Cow::Owned(i.to_string().into_bytes())),
        Value::Okay => Some(Cow::Borrowed(b"OK")),
        _ => None,
    }
}

/// A reply element as text (lossy).
pub(crate) fn text(v: &Value) -> String {
    bytes(v)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A reply element as an integer.
pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => std::str::from_utf8(&bytes(other).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Error::Corrupt(format!("redis: expected an integer reply, got {other:?}"))
            }),
    }
}

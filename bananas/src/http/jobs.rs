//! The job documents of the API: what `POST /jobs` takes
//! ([`EnqueueRequest`]) and what `GET /jobs/{id}` answers ([`JobView`]).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{value::RawValue, Value};

use crate::{
    job::{now_millis, Extra, Job, JobRecord, JobState, Millis, Priority, Route},
    rules,
    task::Registry,
    Error,
};

/// The most retries a request may ask for: the macro's bound too.
pub use crate::rules::MAX_RETRIES;

/// The longest countdown a request may ask for: 10 years, in seconds.
pub const MAX_COUNTDOWN_SECS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

const FIELDS: &str =
    "`name`, `payload`, `priority`, `route`, `countdown`, `eta`, `retries`, `tags`, `meta`";
const FIELD_NAMES: [&str; 9] = [
    "name",
    "payload",
    "priority",
    "route",
    "countdown",
    "eta",
    "retries",
    "tags",
    "meta",
];

/// A validated `POST /jobs` body. Options left out take the task's defaults
/// when the server knows the task, and the global defaults otherwise
/// (route `default`, priority `normal`, 3 retries).
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The task name.
    pub name: String,
    /// The arguments: a JSON object keyed by parameter name.
    pub payload: Box<RawValue>,
    /// The priority, if given.
    pub priority: Option<Priority>,
    /// The route, if given.
    pub route: Option<Route>,
    /// When to run (from `countdown` or `eta`), if given.
    pub eta: Option<Millis>,
    /// Retries after the first attempt, if given.
    pub retries: Option<u32>,
    /// Tags and metadata, if given.
    pub extra: Option<Box<Extra>>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a JSON text starts with, for error messages: `a string`, `an
/// object`, … (`raw` is valid JSON).
fn raw_type_name(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The value of a field other than `payload`, whose number precision does
/// not matter (they are checked and converted).
fn field_value(name: &str, raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("field `{name}`: {e}"))
}

impl EnqueueRequest {
    /// Parses and checks a request body. The `payload` is kept as the JSON
    /// text the client sent, so the task gets exactly those arguments:
    /// `123456789012345678901234567890` stays that number (a
    /// [`serde_json::Value`] would turn it into `1.2345678901234568e29`).
    /// The error names the field and what was expected, or says the JSON
    /// is malformed; it is a client error (400).
    pub fn from_slice(body: &[u8]) -> Result<Self, String> {
        let raw: &RawValue =
            serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
        if !raw.get().trim_start().starts_with('{') {
            return Err(format!(
                "the request body must be a JSON object with {FIELDS}, got {}",
                raw_type_name(raw)
            ));
        }
        let fields: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(raw.get()).map_err(|e| format!("malformed JSON: {e}"))?;
        Self::from_fields(fields)
    }

    /// Checks a request body given as a [`Value`]. Numbers in the payload
    /// are whatever `body` holds (a [`Value`] keeps at most an `f64`'s
    /// precision for numbers outside `i64`/`u64`): a server should use
    /// [`EnqueueRequest::from_slice`] on the bytes it received.
    pub fn from_json(body: Value) -> Result<Self, String> {
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        Self::from_slice(&bytes)
    }

    fn from_fields(mut obj: BTreeMap<String, Box<RawValue>>) -> Result<Self, String> {
        if let Some(k) = obj.keys().find(|k| !FIELD_NAMES.contains(&k.as_str())) {
            return Err(format!("unknown field `{k}`: expected {FIELDS}"));
        }
        let mut take = |name: &str| -> Result<Option<Value>, String> {
            obj.remove(name)
                .map(|raw| field_value(name, &raw))
                .transpose()
        };
        let name = match take("name")? {
            None | Some(Value::Null) => {
                return Err("missing field `name`: the task name".to_owned())
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err("field `name` must not be empty".to_owned())
            }
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(format!(
                    "field `name` must be a string, got {}",
                    type_name(&v)
                ))
            }
        };
        let priority = match take("priority")? {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(Priority::from_name(&s).map_err(|e| format!("field `priority`: {e}"))?)
            }
            Some(v) => {
                return Err(format!(
                    "field `priority` must be one of \"high\", \"normal\", \"low\", got {}",
                    type_name(&v)
                ))
            }
        };
        let route = match take("route")? {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(Route::new(s).map_err(|e| format!("field `route`: {e}"))?)
            }
            Some(v) => {
                return Err(format!(
                    "field `route` must be a string, got {}",
                    type_name(&v)
                ))
            }
        };
        let retries = match take("retries")? {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(rules::retries_in_range)
                    .ok_or_else(|| {
                        format!(
                            "field `retries` must be an integer from 0 to {MAX_RETRIES}, got {v}"
                        )
                    })?,
            ),
        };
        let countdown = take("countdown")?.filter(|v| !v.is_null());
        let eta = take("eta")?.filter(|v| !v.is_null());
        let eta = match (countdown, eta) {
            (Some(_), Some(_)) => {
                return Err("give either `countdown` or `eta`, not both".to_owned())
            }
            (Some(c), None) => Some(parse_countdown(&c)?),
            (None, Some(e)) => Some(parse_eta(&e)?),
            (None, None) => None,
        };
        let tags = match take("tags")? {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s),
                    other => Err(format!(
                        "field `tags` must be an array of strings, got {} in it",
                        type_name(&other)
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(format!(
                    "field `tags` must be an array of strings, got {}",
                    type_name(&v)
                ))
            }
        };
        let meta = match take("meta")? {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m,
            Some(v) => {
                return Err(format!(
                    "field `meta` must be an object, got {}",
                    type_name(&v)
                ))
            }
        };
        let extra = Extra { tags, meta };
        extra.check().map_err(|e| e.to_string())?;
        let extra = (!extra.is_empty()).then(|| Box::new(extra));
        // The payload is passed on as sent, never through a `Value`.
        let payload = match obj.remove("payload") {
            None => empty_object(),
            Some(raw) if raw.get().starts_with('{') => raw,
            Some(raw) if raw.get() == "null" => empty_object(),
            Some(raw) => {
                return Err(format!(
                    "field `payload` must be an object keyed by the task's parameter names, got {}",
                    raw_type_name(&raw)
                ))
            }
        };
        Ok(EnqueueRequest {
            name,
            payload,
            priority,
            route,
            eta,
            retries,
            extra,
        })
    }

    /// Builds the job. With a registry the task must exist and the payload
    /// must match its parameters ([`Error::UnknownTask`],
    /// [`Error::InvalidArgs`]), and omitted options take the task's
    /// defaults; without one any name is accepted.
    pub fn into_job(self, registry: Option<&Registry>) -> Result<Job, Error> {
        let def = match registry {
            Some(r) => Some(r.validate(&self.name, &self.payload)?),
            None => None,
        };
        let mut job = Job::new(self.name, self.payload);
        job.priority = self
            .priority
            .or(def.map(|d| d.priority))
            .unwrap_or_default();
        job.route = match (self.route, def) {
            (Some(r), _) => r,
            (None, Some(d)) => Route::new(d.route)?,
            (None, None) => Route::default(),
        };
        if let Some(n) = self.retries.or(def.map(|d| d.retries)) {
            job.max_retries = n;
        }
        job.eta = self.eta;
        job.extra = self.extra;
        Ok(job)
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON")
}

/// Seconds from now, as a number, to an eta in milliseconds.
pub fn parse_countdown(v: &Value) -> Result<Millis, String> {
    let secs = v
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= MAX_COUNTDOWN_SECS)
        .ok_or_else(|| {
            format!("field `countdown` must be a number of seconds from 0 to {MAX_COUNTDOWN_SECS}, got {v}")
        })?;
    Ok(now_millis() + (secs * 1000.0).round() as u64)
}

/// An RFC 3339 string or an integer of milliseconds since the Unix epoch.
pub fn parse_eta(v: &Value) -> Result<Millis, String> {
    const WHAT: &str = "field `eta` must be an RFC 3339 time like \"2030-01-01T09:00:00Z\" \
                        or milliseconds since the Unix epoch";
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .filter(|&ms| ms >= 0)
            .map(|ms| ms as Millis)
            .ok_or_else(|| format!("{WHAT}, got \"{s}\"")),
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{WHAT}, got {n}")),
        other => Err(format!("{WHAT}, got {}", type_name(other))),
    }
}

/// A millisecond timestamp as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: Millis) -> Option<String> {
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A timestamp in both forms: RFC 3339 for people, milliseconds for programs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Timestamp {
    /// RFC 3339, UTC.
    pub at: String,
    /// Milliseconds since the Unix epoch.
    pub ms: Millis,
}

impl Timestamp {
    /// The timestamp of `ms`.
    pub fn from_millis(ms: Millis) -> Self {
        Timestamp {
            at: rfc3339(ms).unwrap_or_default(),
            ms,
        }
    }
}

/// What `GET /jobs/{id}` and `GET /dead` answer for a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// The task name.
    pub name: String,
    /// `queued`, `scheduled`, `active`, `succeeded`, `retrying` or `dead`.
    pub state: JobState,
    /// The route.
    pub route: String,
    /// The priority.
    pub priority: Priority,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// The arguments.
    pub payload: Box<RawValue>,
    /// The result, once it succeeded (`null` otherwise).
    pub result: Option<Box<RawValue>>,
    /// The last error, if an attempt failed (`null` otherwise).
    pub error: Option<String>,
    /// What the running attempt last reported (`null` otherwise).
    pub progress: Option<Box<RawValue>>,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it was (or is) due, if delayed.
    pub eta: Option<Timestamp>,
    /// When the last attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached its final state.
    pub finished_at: Option<Timestamp>,
    /// Its tags (`[]` without any).
    pub tags: Vec<String>,
    /// Its metadata (`{}` without any).
    pub meta: serde_json::Map<String, Value>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        JobView {
            id: r.id.to_string(),
            name: r.task,
            state: r.state,
            route: r.route.to_string(),
            priority: r.priority,
            attempts: r.attempts,
            max_retries: r.max_retries,
            payload: r.args,
            result: r.result,
            error: r.error,
            progress: r.progress,
            created_at: Timestamp::from_millis(r.created_at),
            eta: r.eta.map(Timestamp::from_millis),
            started_at: r.started_at.map(Timestamp::from_millis),
            finished_at: r.finished_at.map(Timestamp::from_millis),
            tags: r.extra.as_ref().map(|x| x.tags.clone()).unwrap_or_default(),
            meta: r.extra.map(|x| x.meta).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        EnqueueRequest::from_json(v).unwrap_err()
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(err(json!({})).contains("missing field `name`"));
        assert!(err(json!([])).contains("JSON object"));
        assert!(err(json!({"name": 1})).contains("`name` must be a string"));
        assert!(err(json!({"name": "a", "payload": [1]})).contains("`payload`"));
        assert!(err(json!({"name": "a", "priority": "urgent"})).contains("urgent"));
        assert!(err(json!({"name": "a", "route": "bad route"})).contains("`route`"));
        assert!(err(json!({"name": "a", "retries": -1})).contains("`retries`"));
        assert!(err(json!({"name": "a", "countdown": "5"})).contains("`countdown`"));
        assert!(err(json!({"name": "a", "eta": "tomorrow"})).contains("`eta`"));
        assert!(err(json!({"name": "a", "eta": 1, "countdown": 1})).contains("not both"));
        assert!(err(json!({"name": "a", "delay": 1})).contains("unknown field `delay`"));
    }

    #[test]
    fn the_macro_rules_apply() {
        let ok = |v: Value| EnqueueRequest::from_json(v).unwrap();
        assert_eq!(
            ok(json!({"name": "a", "retries": 1000})).retries,
            Some(1000)
        );
        assert_eq!(ok(json!({"name": "a", "retries": 0})).retries, Some(0));
        assert_eq!(
            err(json!({"name": "a", "retries": 1001})),
            "field `retries` must be an integer from 0 to 1000, got 1001"
        );
        assert!(err(json!({"name": "a", "retries": 4294967296u64})).contains("`retries`"));
        assert_eq!(
            ok(json!({"name": "a", "priority": "low"})).priority,
            Some(Priority::Low)
        );
        assert_eq!(
            err(json!({"name": "a", "priority": "High"})),
            "field `priority`: unknown priority `High`: expected one of `high`, `normal`, `low`"
        );
        let long = "r".repeat(65);
        assert!(err(json!({"name": "a", "route": long})).contains("invalid route"));
        let route = "r".repeat(64);
        assert_eq!(
            ok(json!({"name": "a", "route": route}))
                .route
                .unwrap()
                .as_str(),
            route
        );
    }

    #[test]
    fn eta_takes_rfc3339_or_millis() {
        assert_eq!(parse_eta(&json!("1970-01-01T00:00:01Z")).unwrap(), 1000);
        assert_eq!(parse_eta(&json!(1234)).unwrap(), 1234);
        assert!(parse_eta(&json!(-5)).is_err());
    }

    #[test]
    fn defaults_without_registry() {
        let job = EnqueueRequest::from_json(json!({"name": "x", "countdown": 1.5}))
            .unwrap()
            .into_job(None)
            .unwrap();
        assert_eq!(job.route.as_str(), "default");
        assert_eq!(job.priority, Priority::Normal);
        assert_eq!(job.args.get(), "{}");
        assert!(job.eta.unwrap() >= now_millis() + 1000);
    }
}

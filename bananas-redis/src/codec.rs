//! The compact encodings the scripts store (see `lua/route.lua`).
//!
//! A job's immutable part is its *spec*:
//! `prio SEP max_retries SEP created_at SEP eta SEP task SEP args`, with
//! `SEP` the byte 0x1f, which valid JSON never contains unescaped. The
//! arguments pass through as the caller's JSON text: nothing is re-encoded.
//! A finished job's *record* is
//! `state SEP attempts SEP started_at SEP finished_at SEP error SEP result SEP spec`.

use bananas_core::{
    job::{Millis, Priority},
    Error, Job, JobId, JobRecord, JobState, Result, Route,
};
use serde_json::value::RawValue;

/// The field separator.
pub(crate) const SEP: char = '\x1f';

/// A priority as one character, in a stored spec and in a fetch plan
/// (`h`, `n` or `l`; the scripts read it back in `route.lua`'s `queue_of`
/// and in `fetch.lua`).
pub(crate) fn prio_char(p: Priority) -> char {
    match p {
        Priority::High => 'h',
        Priority::Normal => 'n',
        Priority::Low => 'l',
    }
}

fn prio_of(s: &str) -> Option<Priority> {
    match s {
        "h" => Some(Priority::High),
        "n" => Some(Priority::Normal),
        "l" => Some(Priority::Low),
        _ => None,
    }
}

/// Encodes a job's spec. Fails if the task name contains the separator.
pub(crate) fn encode_spec(job: &Job) -> Result<String> {
    if job.task.contains(SEP) {
        return Err(Error::Invalid(format!(
            "task name {:?} contains the byte 0x1f, which the Redis broker uses as a separator",
            job.task
        )));
    }
    let args = job.args.get();
    let mut s = String::with_capacity(args.len() + job.task.len() + 40);
    use std::fmt::Write as _;
    let _ = write!(
        s,
        "{}{SEP}{}{SEP}{}{SEP}",
        prio_char(job.priority),
        job.max_retries,
        job.created_at
    );
    if let Some(eta) = job.eta {
        let _ = write!(s, "{eta}");
    }
    s.push(SEP);
    s.push_str(&job.task);
    s.push(SEP);
    s.push_str(args);
    Ok(s)
}

/// Replaces the separator in free text (errors) so it cannot split a record.
pub(crate) fn clean_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(SEP) {
        std::borrow::Cow::Owned(s.replace(SEP, " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A decoded spec.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) priority: Priority,
    pub(crate) max_retries: u32,
    pub(crate) created_at: Millis,
    pub(crate) eta: Option<Millis>,
    pub(crate) task: String,
    pub(crate) args: Box<RawValue>,
}

/// Decodes a spec strictly: any problem is the reason it is corrupt.
#[cfg(test)]
pub(crate) fn decode_spec(spec: &[u8]) -> std::result::Result<Spec, String> {
    decode_spec_owned(spec.to_vec())
}

/// Decodes a spec strictly, reusing its buffer for the arguments (the
/// fields before them are shifted out in place; nothing is copied to a new
/// allocation). Any problem is the reason it is corrupt.
pub(crate) fn decode_spec_owned(spec: Vec<u8>) -> std::result::Result<Spec, String> {
    let mut owned =
        String::from_utf8(spec).map_err(|e| format!("corrupt job data: not UTF-8 ({e})"))?;
    let s = owned.as_str();
    let mut it = s.splitn(6, SEP);
    let mut next = |what: &str| {
        it.next()
            .ok_or_else(|| format!("corrupt job data: missing field `{what}`"))
    };
    let prio = next("priority")?;
    let max_retries = next("max_retries")?;
    let created_at = next("created_at")?;
    let eta = next("eta")?;
    let task = next("task")?;
    let args = next("args")?;
    let priority =
        prio_of(prio).ok_or_else(|| format!("corrupt job data: bad priority {prio:?}"))?;
    let max_retries = max_retries
        .parse()
        .map_err(|_| format!("corrupt job data: bad max_retries {max_retries:?}"))?;
    let created_at = created_at
        .parse()
        .map_err(|_| format!("corrupt job data: bad created_at {created_at:?}"))?;
    let eta = if eta.is_empty() {
        None
    } else {
        Some(
            eta.parse()
                .map_err(|_| format!("corrupt job data: bad eta {eta:?}"))?,
        )
    };
    if task.is_empty() {
        return Err("corrupt job data: empty task name".into());
    }
    let task = task.to_owned();
    let args_at = s.len() - args.len();
    owned.drain(..args_at);
    let args =
        RawValue::from_string(owned).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    Ok(Spec {
        priority,
        max_retries,
        created_at,
        eta,
        task,
        args,
    })
}

/// Decodes a spec leniently, for reporting: whatever is unreadable gets a
/// neutral value, and unreadable arguments are kept as a JSON string.
pub(crate) fn decode_spec_lenient(spec: &str) -> Spec {
    let mut it = spec.splitn(6, SEP);
    let mut next = || it.next().unwrap_or("");
    let prio = next();
    let max_retries = next();
    let created_at = next();
    let eta = next();
    let task = next();
    let args = next();
    Spec {
        priority: prio_of(prio).unwrap_or_default(),
        max_retries: max_retries.parse().unwrap_or(0),
        created_at: created_at.parse().unwrap_or(0),
        eta: eta.parse().ok(),
        task: task.to_owned(),
        args: lenient_json(args),
    }
}

fn lenient_json(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned())
        .unwrap_or_else(|_| serde_json::value::to_raw_value(s).unwrap_or_else(|_| null()))
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// Builds the envelope of a fetched job; `lease_token` is what the broker
/// wants back with its ack.
pub(crate) fn job_from_spec(
    id: String,
    route: &Route,
    attempt: u32,
    spec: Spec,
    lease_token: u64,
) -> Job {
    Job {
        id: JobId::from(id),
        task: spec.task,
        args: spec.args,
        priority: spec.priority,
        route: route.clone(),
        attempt,
        max_retries: spec.max_retries,
        created_at: spec.created_at,
        eta: spec.eta,
        lease_token,
    }
}

fn base_record(id: &str, route: &Route, state: JobState, spec: Spec) -> JobRecord {
    JobRecord {
        id: JobId::from(id),
        task: spec.task,
        state,
        route: route.clone(),
        priority: spec.priority,
        attempts: 0,
        max_retries: spec.max_retries,
        args: spec.args,
        result: None,
        error: None,
        progress: None,
        created_at: spec.created_at,
        eta: spec.eta,
        started_at: None,
        finished_at: None,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Decodes a final record (`state SEP attempts SEP ... SEP spec`).
pub(crate) fn decode_record(id: &str, route: &Route, rec: &[u8]) -> JobRecord {
    let rec = String::from_utf8_lossy(rec);
    let mut it = rec.splitn(7, SEP);
    let mut next = || it.next().unwrap_or("");
    let state = if next() == "s" {
        JobState::Succeeded
    } else {
        JobState::Dead
    };
    let attempts = next().parse().unwrap_or(0);
    let started_at = next().parse().ok();
    let finished_at = next().parse().ok();
    let error = non_empty(next()).map(str::to_owned);
    let result = non_empty(next()).map(lenient_json);
    let spec = decode_spec_lenient(next());
    JobRecord {
        attempts,
        started_at,
        finished_at,
        error,
        result,
        ..base_record(id, route, state, spec)
    }
}

/// Decodes what `job_info.lua` returns for a live job.
pub(crate) fn decode_live(
    id: &str,
    route: &Route,
    state: &str,
    spec: &[u8],
    meta: &[u8],
    eta: &[u8],
    progress: &[u8],
) -> JobRecord {
    let state = match state {
        "active" => JobState::Active,
        "scheduled" => JobState::Scheduled,
        "retrying" => JobState::Retrying,
        _ => JobState::Queued,
    };
    let spec = decode_spec_lenient(&String::from_utf8_lossy(spec));
    let meta = String::from_utf8_lossy(meta);
    let mut it = meta.splitn(3, SEP);
    let attempts = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let started_at = it.next().and_then(|s| s.parse().ok());
    let error = it.next().and_then(non_empty).map(str::to_owned);
    let eta = std::str::from_utf8(eta)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as Millis);
    let mut r = base_record(id, route, state, spec);
    r.attempts = attempts;
    r.started_at = started_at;
    r.error = error;
    if eta.is_some() {
        r.eta = eta;
    }
    // Stored only after the worker serialized it; anything unreadable is
    // left out rather than failing the whole record.
    r.progress = std::str::from_utf8(progress)
        .ok()
        .filter(|s| !s.is_empty())
        .and_then(|s| RawValue::from_string(s.to_owned()).ok());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let mut j = Job::new(
            "add",
            RawValue::from_string(r#"{"a":1,"s":"x y"}"#.into()).unwrap(),
        );
        j.priority = Priority::High;
        j.eta = Some(42);
        j
    }

    #[test]
    fn spec_round_trips_without_touching_args() {
        let j = job();
        let s = encode_spec(&j).unwrap();
        let d = decode_spec(s.as_bytes()).unwrap();
        assert_eq!(d.task, "add");
        assert_eq!(d.args.get(), r#"{"a":1,"s":"x y"}"#);
        assert_eq!(d.priority, Priority::High);
        assert_eq!(d.eta, Some(42));
        assert_eq!(d.created_at, j.created_at);
    }

    #[test]
    fn corrupt_specs_name_the_problem() {
        assert!(decode_spec(b"n\x1f3").unwrap_err().contains("missing"));
        let bad = "n\x1f3\x1f1\x1f\x1ftask\x1f{not json";
        assert!(decode_spec(bad.as_bytes())
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(decode_spec(b"\xff\xfe").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn records_decode_leniently() {
        let spec = encode_spec(&job()).unwrap();
        let rec = format!("s\x1f2\x1f10\x1f20\x1f\x1f{{\"ok\":true}}\x1f{spec}");
        let r = decode_record("id", &Route::default(), rec.as_bytes());
        assert_eq!(r.state, JobState::Succeeded);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.result.unwrap().get(), r#"{"ok":true}"#);
        assert_eq!(r.error, None);
        let rec = "d\x1f1\x1f\x1f20\x1fboom\x1f\x1fn\x1f0\x1f0\x1f\x1ft\x1f{bad";
        let r = decode_record("id", &Route::default(), rec.as_bytes());
        assert_eq!(r.state, JobState::Dead);
        assert_eq!(r.error.as_deref(), Some("boom"));
        assert_eq!(r.args.get(), r#""{bad""#);
    }
}

//! The compact encodings stored in Redis, and their one decoder.
//!
//! Scripts build these strings (`lua/include/record.lua`) and read two
//! fields of a spec (`lua/include/spec.lua`: the priority and the retry
//! cap) and the attempt counter of `meta` (`lua/include/meta.lua`);
//! everything else about them is read here, and only here.
//!
//! A job's immutable part is its *spec*:
//! `prio SEP max_retries SEP created_at SEP eta SEP task SEP args`, with
//! `SEP` the byte 0x1f, which valid JSON never contains unescaped, and
//! `prio` one of `h`, `n`, `l`. The arguments pass through as the caller's
//! JSON text: nothing is re-encoded.
//! A finished job's *record* is
//! `state SEP attempts SEP started_at SEP finished_at SEP error SEP result SEP spec`
//! with `state` `s` (succeeded) or `d` (dead).
//! A live job's *meta* is `attempts SEP started_at SEP last_error`, and
//! `SEP lost` once a worker holding it was lost, stored only where it
//! cannot be derived (see `lua/include/meta.lua`).
//! A progress report is `attempt SEP json`; a schedule's tick mark is
//! `tick SEP job id`, and a claimed tick whose job may not be enqueued yet
//! is `tick SEP job id SEP route SEP due SEP spec`.

use bananas_core::{
    job::{Millis, Priority},
    Error, Job, JobId, JobRecord, JobState, Result, Route,
};
use serde_json::value::RawValue;

/// The field separator.
pub(crate) const SEP: char = '\x1f';

/// A priority as one character, in a stored spec and in a fetch plan
/// (`h`, `n` or `l`; the scripts read it back in `include/spec.lua` and
/// `ops/fetch.lua`).
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
    (attempt, lost): (u32, u32),
    spec: Spec,
    lease_token: u64,
) -> Job {
    Job {
        extra: None,
        id: JobId::from(id),
        task: spec.task,
        args: spec.args,
        priority: spec.priority,
        route: route.clone(),
        attempt,
        max_retries: spec.max_retries,
        lost,
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
        extra: None,
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

/// What `job_info.lua` returns about a live job, as stored.
#[derive(Debug, Default)]
pub(crate) struct Live<'a> {
    /// Its spec.
    pub(crate) spec: &'a [u8],
    /// Its meta field (empty without one).
    pub(crate) meta: &'a [u8],
    /// Whether a worker holds its lease.
    pub(crate) leased: bool,
    /// Its score in the schedule (empty when not scheduled).
    pub(crate) eta: &'a [u8],
    /// Its progress report (empty without one, or when not leased).
    pub(crate) progress: &'a [u8],
}

/// Decodes a live job: its state is active while leased; else scheduled
/// (or retrying, when an attempt failed) while it has an eta; else queued.
pub(crate) fn decode_live(id: &str, route: &Route, live: Live<'_>) -> JobRecord {
    let spec = decode_spec_lenient(&String::from_utf8_lossy(live.spec));
    let meta = String::from_utf8_lossy(live.meta);
    let mut it = meta.splitn(4, SEP);
    // A leased job without meta is on its first attempt.
    let attempts = match it.next().filter(|s| !s.is_empty()) {
        Some(s) => s.parse().unwrap_or(0),
        None if live.leased => 1,
        None => 0,
    };
    let started_at = it.next().and_then(|s| s.parse().ok());
    let error = it.next().and_then(non_empty).map(str::to_owned);
    let eta = std::str::from_utf8(live.eta)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as Millis);
    let state = if live.leased {
        JobState::Active
    } else if eta.is_some() {
        if error.is_some() {
            JobState::Retrying
        } else {
            JobState::Scheduled
        }
    } else {
        JobState::Queued
    };
    let mut r = base_record(id, route, state, spec);
    r.attempts = attempts;
    r.started_at = started_at;
    r.error = error;
    if eta.is_some() {
        r.eta = eta;
    }
    // Shown only for the attempt that made the report; stored only after
    // the worker serialized it, so anything unreadable is left out rather
    // than failing the whole record.
    r.progress = std::str::from_utf8(live.progress)
        .ok()
        .and_then(|p| p.split_once(SEP))
        .filter(|(attempt, _)| live.leased && attempt.parse::<u32>().ok() == Some(attempts))
        .map(|(_, json)| json)
        .filter(|json| !json.is_empty())
        .and_then(|json| RawValue::from_string(json.to_owned()).ok());
    r
}

/// The spec to requeue a dead job with, from its record: the spec as
/// stored, with its eta cleared, and its priority. `None` when the record
/// holds no complete spec.
pub(crate) fn requeue_spec(rec: &[u8]) -> Option<(String, Priority)> {
    let rec = std::str::from_utf8(rec).ok()?;
    let fields: Vec<&str> = rec.splitn(12, SEP).collect();
    if fields.len() < 12 {
        return None;
    }
    // fields[6..12] = prio, max_retries, created_at, eta, task, args
    let mut spec = fields[6..12].to_vec();
    spec[3] = "";
    let priority = prio_of(spec[0]).unwrap_or(Priority::Normal);
    Some((spec.join(&SEP.to_string()), priority))
}

/// Decodes a schedule's tick mark, `tick SEP job id`.
pub(crate) fn decode_tick_mark(raw: &str) -> Option<(Millis, &str)> {
    let (tick, id) = raw.split_once(SEP)?;
    Some((tick.parse().ok()?, id))
}

/// Encodes a schedule's tick mark, `tick SEP job id`.
pub(crate) fn encode_tick_mark(tick: Millis, id: &str) -> String {
    format!("{tick}{SEP}{id}")
}

/// A claimed tick whose job may not be enqueued yet: everything needed to
/// enqueue it, whoever does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingTick {
    pub(crate) tick: Millis,
    pub(crate) job_id: String,
    pub(crate) route: String,
    /// When the job may run (0: now).
    pub(crate) due: Millis,
    pub(crate) spec: String,
}

impl PendingTick {
    /// `tick SEP job id SEP route SEP due SEP spec`; an id containing the
    /// separator is refused (it would not read back).
    pub(crate) fn encode(&self) -> Result<String> {
        if self.job_id.contains(SEP) {
            return Err(Error::Invalid(format!(
                "job id {:?} contains the byte 0x1f, which the Redis broker uses as a separator",
                self.job_id
            )));
        }
        let PendingTick {
            tick,
            job_id,
            route,
            due,
            spec,
        } = self;
        Ok(format!(
            "{tick}{SEP}{job_id}{SEP}{route}{SEP}{due}{SEP}{spec}"
        ))
    }

    pub(crate) fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(5, SEP);
        let tick = parts.next()?.parse().ok()?;
        let job_id = parts.next()?.to_owned();
        let route = parts.next()?.to_owned();
        let due = parts.next()?.parse().ok()?;
        let spec = parts.next()?.to_owned();
        Some(PendingTick {
            tick,
            job_id,
            route,
            due,
            spec,
        })
    }
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

    #[test]
    fn live_jobs_get_their_state_from_lease_eta_and_meta() {
        let spec = encode_spec(&job()).unwrap();
        let live = |meta: &'static str, leased, eta: &'static str, progress: &'static str| {
            let spec = spec.clone();
            decode_live(
                "id",
                &Route::default(),
                Live {
                    spec: spec.as_bytes(),
                    meta: meta.as_bytes(),
                    leased,
                    eta: eta.as_bytes(),
                    progress: progress.as_bytes(),
                },
            )
        };
        let r = live("", false, "", "");
        assert_eq!(
            (r.state, r.attempts, r.eta),
            (JobState::Queued, 0, Some(42))
        );
        let r = live("", true, "", "1\x1f{\"p\":1}");
        assert_eq!((r.state, r.attempts), (JobState::Active, 1));
        assert_eq!(r.progress.unwrap().get(), r#"{"p":1}"#);
        // A report of an earlier attempt is not shown.
        let r = live("2\x1f10\x1f", true, "", "1\x1f{}");
        assert_eq!((r.state, r.attempts), (JobState::Active, 2));
        assert!(r.progress.is_none());
        let r = live("", false, "99.0", "");
        assert_eq!((r.state, r.eta), (JobState::Scheduled, Some(99)));
        let r = live("1\x1f10\x1fboom", false, "99", "");
        assert_eq!((r.state, r.attempts), (JobState::Retrying, 1));
        assert_eq!((r.started_at, r.error.as_deref()), (Some(10), Some("boom")));
    }

    #[test]
    fn records_give_back_their_spec_without_eta() {
        let spec = encode_spec(&job()).unwrap();
        let rec = format!("d\x1f2\x1f10\x1f20\x1fboom\x1f\x1f{spec}");
        let (again, prio) = requeue_spec(rec.as_bytes()).unwrap();
        assert_eq!(prio, Priority::High);
        let d = decode_spec(again.as_bytes()).unwrap();
        assert_eq!((d.eta, d.task.as_str()), (None, "add"));
        assert_eq!(d.args.get(), r#"{"a":1,"s":"x y"}"#);
        assert_eq!(requeue_spec(b"d\x1f1\x1f\x1f20"), None);
    }

    #[test]
    fn tick_marks_decode() {
        assert_eq!(decode_tick_mark("12\x1fjob@12"), Some((12, "job@12")));
        assert_eq!(decode_tick_mark("x\x1fjob"), None);
        assert_eq!(decode_tick_mark("12"), None);
        let mark = encode_tick_mark(12, "job@12");
        assert_eq!(decode_tick_mark(&mark), Some((12, "job@12")));
    }

    #[test]
    fn pending_ticks_round_trip() {
        let p = PendingTick {
            tick: 12,
            job_id: "sched-a-12".into(),
            route: "gpu".into(),
            due: 0,
            spec: encode_spec(&job()).unwrap(),
        };
        let raw = p.encode().unwrap();
        assert_eq!(PendingTick::decode(&raw), Some(p.clone()));
        assert!(PendingTick::decode("12\x1fid\x1fgpu").is_none());
        assert!(PendingTick::decode("x\x1fid\x1fgpu\x1f0\x1fspec").is_none());
        let bad = PendingTick {
            job_id: "a\x1fb".into(),
            ..p
        };
        assert!(bad.encode().is_err());
    }
}

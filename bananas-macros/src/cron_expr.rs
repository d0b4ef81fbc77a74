//! Cron expressions as users write them: the 5-, 6- and 7-field forms,
//! `@daily` and friends, Unix day-of-week numbers, and a range check of
//! every field that names the field and its real range.

use std::str::FromStr;

/// Turns what the user wrote into an expression `cron::Schedule::from_str`
/// accepts with the same meaning, or says what is wrong.
///
/// - `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` pass through.
/// - 5 fields (`min hour dom month dow`) get a `0` seconds field in front.
/// - 6 fields (`sec min hour dom month dow`) and 7 (with a year) are kept.
/// - Day-of-week numbers follow Unix cron (`0` or `7` is Sunday, `1` Monday
///   … `6` Saturday) and are rewritten to names (`SUN` … `SAT`), because the
///   cron crate numbers days from `1` = Sunday.
pub(crate) fn normalize_cron(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let normalized = if expr.starts_with('@') {
        expr.to_owned()
    } else {
        let mut fields: Vec<String> = expr.split_whitespace().map(str::to_owned).collect();
        let kinds: &[CronField] = match fields.len() {
            5 => &CRON_FIELDS[1..6],
            6 => &CRON_FIELDS[..6],
            7 => &CRON_FIELDS,
            n => {
                return Err(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), \
                     6 (with seconds first) or 7 (with a year last), or one of @hourly, \
                     @daily, @weekly, @monthly, @yearly; found {n} field{}",
                    if n == 1 { "" } else { "s" }
                ))
            }
        };
        // Our own range check first: the cron crate's messages are off by
        // one ("Hours must be less than 23" for 25) and name its own fields.
        for (kind, field) in kinds.iter().zip(&fields) {
            kind.check(field)?;
        }
        if fields.len() == 5 {
            fields.insert(0, "0".to_owned());
        }
        fields[5] = unix_days_of_week(&fields[5])?;
        fields.join(" ")
    };
    if let Err(e) = cron::Schedule::from_str(&normalized) {
        // The cron crate's message may quote the input and point at it on
        // lines of its own; keep the line that says what is wrong.
        let msg = e.to_string();
        let reason = msg
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.chars().all(|c| c == '^'))
            .unwrap_or("not a valid cron expression")
            .to_owned();
        return Err(if normalized != expr {
            format!("{reason} (read as {normalized:?})")
        } else {
            reason
        });
    }
    Ok(normalized)
}

/// A field of a cron expression and the values it takes, as the cron crate
/// reads them (day of week: Unix numbering, before it is rewritten to names).
struct CronField {
    name: &'static str,
    plural: &'static str,
    min: u32,
    max: u32,
    /// What else the field takes, after the range: names, for example.
    also: &'static str,
}

/// Second, minute, hour, day of month, month, day of week, year.
const CRON_FIELDS: [CronField; 7] = [
    CronField::new("second", "seconds", 0, 59, ""),
    CronField::new("minute", "minutes", 0, 59, ""),
    CronField::new("hour", "hours", 0, 23, ""),
    CronField::new("day of month", "days of month", 1, 31, ""),
    CronField::new("month", "months", 1, 12, " or JAN–DEC"),
    CronField::new(
        "day of week",
        "days of week",
        0,
        7,
        " (0 and 7 are Sunday) or SUN–SAT",
    ),
    CronField::new("year", "years", 1970, 2100, ""),
];

impl CronField {
    const fn new(
        name: &'static str,
        plural: &'static str,
        min: u32,
        max: u32,
        also: &'static str,
    ) -> Self {
        CronField {
            name,
            plural,
            min,
            max,
            also,
        }
    }

    fn is_day_of_week(&self) -> bool {
        self.name == "day of week"
    }

    /// Checks the numbers of one field: each value, each range's ends and
    /// order, each step. Names, `*`, `?` and anything malformed are left to
    /// the cron crate (and to [`unix_days_of_week`]).
    fn check(&self, field: &str) -> Result<(), String> {
        let number = |s: &str| -> Result<Option<u32>, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            match s.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(Some(v)),
                _ => Err(format!(
                    "{} `{s}` is out of range: {} are {}–{}{}",
                    self.name, self.plural, self.min, self.max, self.also
                )),
            }
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    // Day-of-week ranges are checked with the day names.
                    if let (Some(a), Some(b), false) = (a, b, self.is_day_of_week()) {
                        if a > b {
                            return Err(format!(
                                "{} range `{range}` runs backwards: write `{a}-{},{}-{b}`",
                                self.name, self.max, self.min
                            ));
                        }
                    }
                }
                None => {
                    number(range)?;
                }
            }
            // The cron crate takes steps from 1 to the field's largest value.
            let step = step.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            if let (Some(step), false) = (step, self.is_day_of_week()) {
                if !matches!(step.parse::<u32>(), Ok(n) if (1..=self.max).contains(&n)) {
                    return Err(format!(
                        "{} step `{step}` is out of range: steps are 1–{}",
                        self.name, self.max
                    ));
                }
            }
        }
        Ok(())
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites the numbers of a day-of-week field (Unix numbering) to names.
fn unix_days_of_week(field: &str) -> Result<String, String> {
    if !field.bytes().any(|b| b.is_ascii_digit()) {
        return Ok(field.to_owned());
    }
    let day = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if n <= 7 {
                Ok(n % 7)
            } else {
                Err(format!(
                    "day of week `{n}` is out of range: days of week are 0–7 (0 and 7 are \
                     Sunday) or SUN–SAT"
                ))
            };
        }
        DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s.get(..3).unwrap_or(s)))
            .map(|p| p as u32)
            .ok_or_else(|| format!("unknown day of week `{s}`: use 0-7 or SUN-SAT"))
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("invalid step in day of week `{item}`"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => {
                    let a = day(a)?;
                    // `5-7` means Friday to Sunday: 7 ends a range as day 7.
                    let b = match b.parse::<u32>() {
                        Ok(7) => 7,
                        _ => day(b)?,
                    };
                    if a > b {
                        return Err(format!("day-of-week range `{r}` runs backwards"));
                    }
                    (a, b)
                }
                None if step > 1 => (day(r)?, 6),
                None => (day(r)?, day(r)?),
            },
        };
        let mut d = from;
        while d <= to {
            let name = DAY_NAMES[(d % 7) as usize];
            if !out.contains(&name) {
                out.push(name);
            }
            d += step;
        }
    }
    Ok(out.join(","))
}

//! Arguments of `#[task(...)]` and `#[periodic(...)]`: parsing into [`Args`]
//! (syntax only, every value kept with its span), then [`Args::validate`]
//! into [`Options`] (every rule in one place, every error pointing at the
//! argument that caused it, all errors reported together).

use std::str::FromStr;

use bananas_core::rules::{self, Missed, Priority};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{
    ext::IdentExt,
    parse::{Parse, ParseStream},
    Ident, LitBool, LitInt, LitStr, Token,
};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(route);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(base);
    syn::custom_keyword!(cap);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(result);
    syn::custom_keyword!(cron);
    syn::custom_keyword!(tz);
    syn::custom_keyword!(missed);
    syn::custom_keyword!(max_missed);
}

/// Which attribute the arguments belong to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Task,
    Periodic,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Task => "#[bananas::task]",
            Kind::Periodic => "#[bananas::periodic]",
        }
    }

    fn valid_keys(self) -> &'static str {
        match self {
            Kind::Task => {
                "`name`, `route`, `priority`, `retries`, `backoff`, `timeout`, `result`, `crate`"
            }
            Kind::Periodic => {
                "`cron`, `tz`, `missed`, `max_missed`, `name`, `route`, `priority`, `retries`, \
                 `backoff`, `timeout`, `result`, `crate`"
            }
        }
    }
}

/// An integer as written, sign included, so `retries = -1` is reported as such.
#[derive(Clone)]
pub(crate) struct SignedInt {
    neg: Option<Token![-]>,
    lit: LitInt,
}

impl Parse for SignedInt {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ok(SignedInt {
            neg: input.parse()?,
            lit: input.parse()?,
        })
    }
}

impl ToTokens for SignedInt {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.neg.to_tokens(tokens);
        self.lit.to_tokens(tokens);
    }
}

impl SignedInt {
    /// The value if it lies in `min..=max`, else an error naming the bounds.
    fn in_range(&self, key: &str, min: u64, max: u64, what: &str) -> syn::Result<u64> {
        let shown = format!("{}{}", if self.neg.is_some() { "-" } else { "" }, self.lit);
        let err = || {
            syn::Error::new_spanned(
                self,
                format!("`{key}` must be an integer from {min} to {max} ({what}), got {shown}"),
            )
        };
        if self.neg.is_some() {
            return Err(err());
        }
        match self.lit.base10_parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(err()),
        }
    }
}

/// One `key = value` argument, as written.
#[derive(Clone)]
pub(crate) enum Arg {
    Name(Ident, LitStr),
    Route(Ident, LitStr),
    Priority(Ident, Ident),
    Retries(Ident, SignedInt),
    Backoff(Ident, Backoff),
    Timeout(Ident, LitStr),
    Result(Ident, LitBool),
    Crate(Ident, LitStr),
    Cron(Ident, LitStr),
    Tz(Ident, LitStr),
    Missed(Ident, LitStr),
    MaxMissed(Ident, SignedInt),
    /// A key that is not an option of either macro; reported by `validate`,
    /// which knows which macro it is and so which keys to list.
    Unknown(Ident),
}

/// `backoff(base = "2s", cap = "10m")`; either part may be left out.
#[derive(Clone, Default)]
pub(crate) struct Backoff {
    base: Option<LitStr>,
    cap: Option<LitStr>,
}

impl Parse for Backoff {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        syn::parenthesized!(content in input);
        let mut out = Backoff::default();
        while !content.is_empty() {
            let lookahead = content.lookahead1();
            let (slot, name, span) = if lookahead.peek(kw::base) {
                let k: kw::base = content.parse()?;
                (&mut out.base, "base", k.span)
            } else if lookahead.peek(kw::cap) {
                let k: kw::cap = content.parse()?;
                (&mut out.cap, "cap", k.span)
            } else {
                return Err(lookahead.error());
            };
            content.parse::<Token![=]>()?;
            let value: LitStr = content.parse()?;
            if slot.is_some() {
                return Err(syn::Error::new(
                    span,
                    format!("`backoff({name} = ...)` specified more than once"),
                ));
            }
            *slot = Some(value);
            if !content.is_empty() {
                content.parse::<Token![,]>()?;
            }
        }
        Ok(out)
    }
}

impl Arg {
    fn key(&self) -> &Ident {
        match self {
            Arg::Name(k, _)
            | Arg::Route(k, _)
            | Arg::Priority(k, _)
            | Arg::Retries(k, _)
            | Arg::Backoff(k, _)
            | Arg::Timeout(k, _)
            | Arg::Result(k, _)
            | Arg::Crate(k, _)
            | Arg::Cron(k, _)
            | Arg::Tz(k, _)
            | Arg::Missed(k, _)
            | Arg::MaxMissed(k, _)
            | Arg::Unknown(k) => k,
        }
    }

    fn periodic_only(&self) -> bool {
        matches!(
            self,
            Arg::Cron(..) | Arg::Tz(..) | Arg::Missed(..) | Arg::MaxMissed(..)
        )
    }

    /// Parses one argument. An error leaves the stream where it failed, and
    /// the caller skips to the next comma.
    fn parse_one(input: ParseStream<'_>) -> syn::Result<Arg> {
        fn key<K: Parse + syn::spanned::Spanned>(
            input: ParseStream<'_>,
            name: &str,
        ) -> syn::Result<Ident> {
            let k: K = input.parse()?;
            Ok(Ident::new(name, k.span()))
        }
        fn eq_then<T: Parse>(input: ParseStream<'_>) -> syn::Result<T> {
            input.parse::<Token![=]>()?;
            input.parse()
        }
        let lookahead = input.lookahead1();
        Ok(if lookahead.peek(kw::name) {
            Arg::Name(key::<kw::name>(input, "name")?, eq_then(input)?)
        } else if lookahead.peek(kw::route) {
            Arg::Route(key::<kw::route>(input, "route")?, eq_then(input)?)
        } else if lookahead.peek(kw::priority) {
            let k = key::<kw::priority>(input, "priority")?;
            input.parse::<Token![=]>()?;
            if input.peek(LitStr) {
                let s: LitStr = input.parse()?;
                return Err(syn::Error::new(
                    s.span(),
                    "`priority` takes a bare name: `priority = high`, `normal` or `low`",
                ));
            }
            Arg::Priority(k, input.call(Ident::parse_any)?)
        } else if lookahead.peek(kw::retries) {
            Arg::Retries(key::<kw::retries>(input, "retries")?, eq_then(input)?)
        } else if lookahead.peek(kw::backoff) {
            let k = key::<kw::backoff>(input, "backoff")?;
            if input.peek(Token![=]) {
                let eq: Token![=] = input.parse()?;
                return Err(syn::Error::new(
                    eq.span,
                    "`backoff` is written `backoff(base = \"2s\", cap = \"10m\")`",
                ));
            }
            Arg::Backoff(k, input.parse()?)
        } else if lookahead.peek(kw::timeout) {
            Arg::Timeout(key::<kw::timeout>(input, "timeout")?, eq_then(input)?)
        } else if lookahead.peek(kw::result) {
            Arg::Result(key::<kw::result>(input, "result")?, eq_then(input)?)
        } else if lookahead.peek(Token![crate]) {
            Arg::Crate(key::<Token![crate]>(input, "crate")?, eq_then(input)?)
        } else if lookahead.peek(kw::cron) {
            Arg::Cron(key::<kw::cron>(input, "cron")?, eq_then(input)?)
        } else if lookahead.peek(kw::tz) {
            Arg::Tz(key::<kw::tz>(input, "tz")?, eq_then(input)?)
        } else if lookahead.peek(kw::missed) {
            Arg::Missed(key::<kw::missed>(input, "missed")?, eq_then(input)?)
        } else if lookahead.peek(kw::max_missed) {
            Arg::MaxMissed(key::<kw::max_missed>(input, "max_missed")?, eq_then(input)?)
        } else if input.peek(Ident::peek_any) {
            let k = input.call(Ident::parse_any)?;
            // Consume the value so the next argument parses normally.
            skip_to_comma(input);
            Arg::Unknown(k)
        } else {
            return Err(lookahead.error());
        })
    }
}

fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        let _ = input.parse::<TokenTree>();
    }
}

/// The arguments of one attribute, as written. Syntax errors are collected
/// (parsing resumes at the next comma) rather than stopping at the first.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) args: Vec<Arg>,
    pub(crate) errors: Option<syn::Error>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut out = Args::default();
        while !input.is_empty() {
            match Arg::parse_one(input) {
                Ok(arg) => out.args.push(arg),
                Err(e) => {
                    push_err(&mut out.errors, e);
                    skip_to_comma(input);
                }
            }
            if input.is_empty() {
                break;
            }
            if let Err(e) = input.parse::<Token![,]>() {
                push_err(&mut out.errors, e);
                skip_to_comma(input);
                let _ = input.parse::<Token![,]>();
            }
        }
        Ok(out)
    }
}

pub(crate) fn push_err(acc: &mut Option<syn::Error>, e: syn::Error) {
    match acc {
        Some(acc) => acc.combine(e),
        None => *acc = Some(e),
    }
}

/// The schedule of a periodic task, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// The expression normalized for `cron::Schedule::from_str`.
    pub(crate) cron: String,
    /// The expression as written, for display.
    pub(crate) written: String,
    pub(crate) tz: String,
    pub(crate) missed: Missed,
}

/// Validated options with their defaults filled in.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) route: String,
    pub(crate) priority: Priority,
    pub(crate) retries: u32,
    /// `(base_ms, cap_ms)`; `None` means `Backoff::DEFAULT`.
    pub(crate) backoff: Option<(u64, u64)>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) store_result: bool,
    pub(crate) krate: TokenStream,
    pub(crate) schedule: Option<Schedule>,
}

impl Args {
    /// Checks every argument for `kind`, fills in defaults, and returns
    /// every error found (syntax errors from parsing included).
    pub(crate) fn validate(self, kind: Kind) -> Result<Options, syn::Error> {
        let mut errors = self.errors;
        let mut err = |e: syn::Error| push_err(&mut errors, e);

        // Repeated and misplaced keys first.
        let mut seen: Vec<String> = Vec::new();
        for arg in &self.args {
            let key = arg.key();
            let k = key.unraw().to_string();
            if let Arg::Unknown(_) = arg {
                err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown argument `{k}` for {}; valid arguments are {}",
                        kind.attr(),
                        kind.valid_keys()
                    ),
                ));
                continue;
            }
            if kind == Kind::Task && arg.periodic_only() {
                err(syn::Error::new(
                    key.span(),
                    format!(
                        "`{k}` is an argument of #[bananas::periodic], not #[bananas::task]; \
                         valid arguments are {}",
                        kind.valid_keys()
                    ),
                ));
                continue;
            }
            if seen.contains(&k) {
                err(syn::Error::new(
                    key.span(),
                    format!("`{k}` specified more than once"),
                ));
            }
            seen.push(k);
        }

        let mut o = Options {
            name: None,
            route: rules::DEFAULT_ROUTE.to_owned(),
            priority: Priority::default(),
            retries: rules::DEFAULT_RETRIES,
            backoff: None,
            timeout_ms: None,
            store_result: true,
            krate: quote!(::bananas),
            schedule: None,
        };
        let mut cron: Option<(Ident, LitStr)> = None;
        let mut tz: Option<LitStr> = None;
        let mut missed: Option<LitStr> = None;
        let mut max_missed: Option<SignedInt> = None;

        for arg in self.args {
            if kind == Kind::Task && arg.periodic_only() {
                continue;
            }
            match arg {
                Arg::Unknown(_) => {}
                Arg::Name(_, v) => {
                    let s = v.value();
                    if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
                        err(syn::Error::new(
                            v.span(),
                            "`name` must be 1 to 200 characters with no control characters",
                        ));
                    } else {
                        o.name = Some(s);
                    }
                }
                Arg::Route(_, v) => {
                    let s = v.value();
                    match rules::check_route(&s) {
                        Ok(()) => o.route = s,
                        Err(e) => err(syn::Error::new(v.span(), e)),
                    }
                }
                Arg::Priority(_, v) => match Priority::from_name(&v.unraw().to_string()) {
                    Ok(p) => o.priority = p,
                    Err(e) => err(syn::Error::new(v.span(), e)),
                },
                Arg::Retries(_, v) => match v.in_range(
                    "retries",
                    0,
                    rules::MAX_RETRIES.into(),
                    "retries after the first attempt",
                ) {
                    Ok(n) => o.retries = n as u32,
                    Err(e) => err(e),
                },
                Arg::Backoff(k, b) => {
                    let base = b.base.as_ref().map(|l| duration_arg(l, "backoff base"));
                    let cap = b.cap.as_ref().map(|l| duration_arg(l, "backoff cap"));
                    let (base, cap) = match (base, cap) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => {
                            err(e);
                            continue;
                        }
                        (base, cap) => (
                            base.map(Result::unwrap)
                                .unwrap_or(rules::DEFAULT_BACKOFF_BASE_MS),
                            cap.map(Result::unwrap)
                                .unwrap_or(rules::DEFAULT_BACKOFF_CAP_MS),
                        ),
                    };
                    if base > cap {
                        err(syn::Error::new(
                            b.base.as_ref().map_or(k.span(), LitStr::span),
                            format!(
                                "the backoff base ({base} ms) is longer than its cap ({cap} ms)"
                            ),
                        ));
                    } else {
                        o.backoff = Some((base, cap));
                    }
                }
                Arg::Timeout(_, v) => match duration_arg(&v, "timeout") {
                    Ok(ms) => o.timeout_ms = Some(ms),
                    Err(e) => err(e),
                },
                Arg::Result(_, v) => o.store_result = v.value,
                Arg::Crate(_, v) => match v.parse::<syn::Path>() {
                    Ok(p) => o.krate = p.to_token_stream(),
                    Err(_) => err(syn::Error::new(
                        v.span(),
                        "`crate` must be a path to the bananas crate, such as \"::my_lib::bananas\"",
                    )),
                },
                Arg::Cron(k, v) => cron = Some((k, v)),
                Arg::Tz(_, v) => tz = Some(v),
                Arg::Missed(_, v) => missed = Some(v),
                Arg::MaxMissed(_, v) => max_missed = Some(v),
            }
        }

        if kind == Kind::Periodic {
            let cron = match cron {
                Some((_, lit)) => match normalize_cron(&lit.value()) {
                    Ok(c) => Some((c, lit.value())),
                    Err(msg) => {
                        err(syn::Error::new(
                            lit.span(),
                            format!("invalid cron expression {:?}: {msg}", lit.value()),
                        ));
                        None
                    }
                },
                None => {
                    err(syn::Error::new(
                        Span::call_site(),
                        "#[bananas::periodic] needs a schedule: `cron = \"0 2 * * *\"` \
                         (5 or 6 fields, or @hourly, @daily, @weekly, @monthly, @yearly)",
                    ));
                    None
                }
            };
            let tz = match tz {
                None => Some("UTC".to_owned()),
                Some(lit) => match chrono_tz::Tz::from_str(&lit.value()) {
                    Ok(_) => Some(lit.value()),
                    Err(_) => {
                        err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown time zone {:?}: expected an IANA name such as \
                                 \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
                                lit.value()
                            ),
                        ));
                        None
                    }
                },
            };
            let limit = match &max_missed {
                None => Some(rules::DEFAULT_MAX_MISSED),
                Some(v) => match v.in_range(
                    "max_missed",
                    1,
                    rules::MAX_MISSED.into(),
                    "missed ticks to run",
                ) {
                    Ok(n) => Some(n as u32),
                    Err(e) => {
                        err(e);
                        None
                    }
                },
            };
            let missed = match &missed {
                None => Some(Missed::default()),
                Some(l) => match Missed::from_name(&l.value(), limit.unwrap_or_default()) {
                    // An invalid `max_missed` is reported above.
                    Ok(Missed::All(_)) if limit.is_none() => None,
                    Ok(m) => Some(m),
                    Err(e) => {
                        err(syn::Error::new(l.span(), e));
                        None
                    }
                },
            };
            if let (Some(m), Some(Missed::Skip | Missed::Latest)) = (&max_missed, missed) {
                err(syn::Error::new_spanned(
                    m,
                    "`max_missed` only applies to `missed = \"all\"`",
                ));
            }
            if let (Some((cron, written)), Some(tz), Some(missed)) = (cron, tz, missed) {
                o.schedule = Some(Schedule {
                    cron,
                    written,
                    tz,
                    missed,
                });
            }
        }

        match errors {
            Some(e) => Err(e),
            None => Ok(o),
        }
    }
}

fn duration_arg(lit: &LitStr, what: &str) -> syn::Result<u64> {
    match parse_duration_ms(&lit.value()) {
        Ok(0) => Err(syn::Error::new(
            lit.span(),
            format!("the {what} must be longer than zero"),
        )),
        Ok(ms) => Ok(ms),
        Err(msg) => Err(syn::Error::new(
            lit.span(),
            format!("invalid {what} {:?}: {msg}", lit.value()),
        )),
    }
}

/// Parses `"500ms"`, `"30s"`, `"10m"`, `"2h"` and sums such as `"1m30s"`
/// into milliseconds.
pub(crate) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    const HINT: &str = "expected a number and a unit (ms, s, m or h), such as \"30s\" or \"1m30s\"";
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(HINT.to_owned());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(HINT.to_owned());
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_owned())?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("missing unit after {n}; {HINT}")),
            other => return Err(format!("unknown unit `{other}`; {HINT}")),
        };
        rest = &rest[unit..];
        total = n
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| "duration too long".to_owned())?;
    }
    Ok(total)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(kind: Kind, tokens: TokenStream) -> Result<Options, String> {
        let args: Args = syn::parse2(tokens).map_err(|e| e.to_string())?;
        args.validate(kind).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn defaults() {
        let o = options(Kind::Task, quote!()).unwrap();
        assert_eq!(o.route, "default");
        assert_eq!(o.priority, Priority::Normal);
        assert_eq!(o.retries, 3);
        assert_eq!(o.backoff, None);
        assert_eq!(o.timeout_ms, None);
        assert!(o.store_result);
        assert!(o.schedule.is_none());
    }

    #[test]
    fn every_option() {
        let o = options(
            Kind::Task,
            quote!(
                name = "n",
                route = "gpu-1",
                priority = high,
                retries = 0,
                backoff(base = "500ms", cap = "1m"),
                timeout = "1m30s",
                result = false,
                crate = "::x::bananas"
            ),
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("n"));
        assert_eq!(o.route, "gpu-1");
        assert_eq!(o.priority, Priority::High);
        assert_eq!(o.retries, 0);
        assert_eq!(o.backoff, Some((500, 60_000)));
        assert_eq!(o.timeout_ms, Some(90_000));
        assert!(!o.store_result);
        assert_eq!(o.krate.to_string(), ":: x :: bananas");
    }

    #[test]
    fn errors_are_collected_and_name_the_choices() {
        let e = options(
            Kind::Task,
            quote!(
                foo = 1,
                route = "a",
                route = "b",
                priority = urgent,
                retries = -1,
                cron = "x"
            ),
        )
        .unwrap_err();
        assert!(
            e.contains("unknown argument `foo`") && e.contains("`timeout`"),
            "{e}"
        );
        assert!(e.contains("`route` specified more than once"), "{e}");
        assert!(e.contains("`high`, `normal`, `low`"), "{e}");
        assert!(e.contains("from 0 to 1000") && e.contains("got -1"), "{e}");
        assert!(
            e.contains("`cron` is an argument of #[bananas::periodic]"),
            "{e}"
        );
    }

    #[test]
    fn retries_bounds() {
        assert!(options(Kind::Task, quote!(retries = 1000)).is_ok());
        assert!(options(Kind::Task, quote!(retries = 1001)).is_err());
        assert!(options(Kind::Task, quote!(retries = 99999999999999999999999)).is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(
            options(Kind::Task, quote!(route = "gpu_1-a"))
                .unwrap()
                .route,
            "gpu_1-a"
        );
        let long = "x".repeat(65);
        assert!(options(Kind::Task, quote!(route = #long)).is_err());
        assert!(options(Kind::Task, quote!(route = "")).is_err());
        let e = options(Kind::Task, quote!(route = "no way")).unwrap_err();
        assert!(e.contains("invalid route `no way`"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("2s"), Ok(2_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("10 days").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(options(Kind::Task, quote!(timeout = "0s")).is_err());
        assert!(options(Kind::Task, quote!(backoff(base = "1m", cap = "1s"))).is_err());
        assert!(options(Kind::Task, quote!(backoff = (1, 2))).is_err());
    }

    #[test]
    fn cron_normalization() {
        assert_eq!(normalize_cron("0 2 * * *").unwrap(), "0 0 2 * * *");
        assert_eq!(normalize_cron("*/5 * * * * *").unwrap(), "*/5 * * * * *");
        assert_eq!(normalize_cron("@daily").unwrap(), "@daily");
        assert_eq!(normalize_cron("@hourly").unwrap(), "@hourly");
        assert_eq!(
            normalize_cron("0 9 * * 1-5").unwrap(),
            "0 0 9 * * MON,TUE,WED,THU,FRI"
        );
        assert_eq!(normalize_cron("0 9 * * 0").unwrap(), "0 0 9 * * SUN");
        assert_eq!(
            normalize_cron("0 9 * * 5-7").unwrap(),
            "0 0 9 * * FRI,SAT,SUN"
        );
        assert_eq!(
            normalize_cron("0 9 * * MON-FRI").unwrap(),
            "0 0 9 * * MON-FRI"
        );
        assert_eq!(
            normalize_cron("0 9 * * */2").unwrap(),
            "0 0 9 * * SUN,TUE,THU,SAT"
        );
        assert_eq!(
            normalize_cron("0 9 * * 1/2").unwrap(),
            "0 0 9 * * MON,WED,FRI"
        );
        assert!(normalize_cron("0 9 * * 8").is_err());
        assert!(normalize_cron("not a cron").is_err());
        assert!(normalize_cron("61 * * * *").is_err());
        assert!(normalize_cron("@sometimes").is_err());
        // Every named field with its range, in the words the user needs.
        for (expr, msg) in [
            ("0 25 * * *", "hour `25` is out of range: hours are 0–23"),
            (
                "60 * * * *",
                "minute `60` is out of range: minutes are 0–59",
            ),
            (
                "0 0 32 * *",
                "day of month `32` is out of range: days of month are 1–31",
            ),
            (
                "0 0 0 * *",
                "day of month `0` is out of range: days of month are 1–31",
            ),
            (
                "0 0 * 13 *",
                "month `13` is out of range: months are 1–12 or JAN–DEC",
            ),
            (
                "0 0 * * 8",
                "day of week `8` is out of range: days of week are 0–7",
            ),
            (
                "61 0 0 * * *",
                "second `61` is out of range: seconds are 0–59",
            ),
            (
                "0 0 0 * * * 2200",
                "year `2200` is out of range: years are 1970–2100",
            ),
            ("0 9-25 * * *", "hour `25` is out of range"),
            ("0 1,2,99 * * *", "hour `99` is out of range"),
            ("0 99999999999 * * *", "hour `99999999999` is out of range"),
            (
                "0 22-2 * * *",
                "hour range `22-2` runs backwards: write `22-23,0-2`",
            ),
            (
                "*/0 * * * *",
                "minute step `0` is out of range: steps are 1–59",
            ),
            (
                "0 */24 * * *",
                "hour step `24` is out of range: steps are 1–23",
            ),
        ] {
            let e = normalize_cron(expr).unwrap_err();
            assert!(e.starts_with(msg), "{expr}: {e}");
        }
        // The ends of each range are valid.
        for e in [
            "59 23 31 12 *",
            "0 0 1 1 0",
            "0 0 * * 7",
            "0 0 * * 5-7",
            "*/59 */23 * * *",
        ] {
            cron::Schedule::from_str(&normalize_cron(e).unwrap()).unwrap();
        }
        // Everything we produce, the runtime can parse.
        for e in ["0 2 * * *", "@weekly", "0 9 * * 1-5", "*/10 * * * * *"] {
            cron::Schedule::from_str(&normalize_cron(e).unwrap()).unwrap();
        }
    }

    #[test]
    fn periodic_options() {
        let o = options(
            Kind::Periodic,
            quote!(cron = "0 2 * * *", tz = "Europe/Berlin"),
        )
        .unwrap();
        let s = o.schedule.unwrap();
        assert_eq!(s.cron, "0 0 2 * * *");
        assert_eq!(s.written, "0 2 * * *");
        assert_eq!(s.tz, "Europe/Berlin");
        assert_eq!(s.missed, Missed::Latest);
        let o = options(
            Kind::Periodic,
            quote!(cron = "@hourly", missed = "all", max_missed = 7),
        )
        .unwrap();
        assert_eq!(o.schedule.unwrap().missed, Missed::All(7));
        let o = options(Kind::Periodic, quote!(cron = "@hourly", missed = "all")).unwrap();
        assert_eq!(o.schedule.unwrap().missed, Missed::All(100));
        assert!(options(Kind::Periodic, quote!(tz = "UTC")).is_err());
        assert!(options(Kind::Periodic, quote!(cron = "@daily", tz = "Mars/Base")).is_err());
        assert!(options(Kind::Periodic, quote!(cron = "@daily", missed = "some")).is_err());
        assert!(options(Kind::Periodic, quote!(cron = "@daily", max_missed = 3)).is_err());
    }
}

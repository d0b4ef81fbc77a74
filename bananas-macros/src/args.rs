//! Arguments of `#[task(...)]` and `#[periodic(...)]`: parsing into [`Args`]
//! (syntax only, every value kept with its span), then [`Args::validate`]
//! into [`Options`] (every rule in one place, every error pointing at the
//! argument that caused it, all errors reported together).
//!
//! A little over 600 lines on purpose: parsing and validation of one
//! attribute stay together so each rule sits next to the argument it
//! checks (splitting them would put every option in two files); cron
//! expressions live in `cron_expr.rs` and the tests in `args/tests.rs`.

use std::str::FromStr;

use crate::cron_expr::normalize_cron;

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
    syn::custom_keyword!(max_lost);
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
                "`name`, `route`, `priority`, `retries`, `max_lost`, `backoff`, `timeout`, `result`, \
                 `crate`"
            }
            Kind::Periodic => {
                "`cron`, `tz`, `missed`, `max_missed`, `name`, `route`, `priority`, `retries`, \
                 `max_lost`, `backoff`, `timeout`, `result`, `crate`"
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
    MaxLost(Ident, SignedInt),
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
            | Arg::MaxLost(k, _)
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
        } else if lookahead.peek(kw::max_lost) {
            Arg::MaxLost(key::<kw::max_lost>(input, "max_lost")?, eq_then(input)?)
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
    /// `None`: the worker's setting.
    pub(crate) max_lost: Option<u32>,
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
            max_lost: None,
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
                Arg::MaxLost(_, v) => match v.in_range(
                    "max_lost",
                    0,
                    rules::MAX_RETRIES.into(),
                    "how often a job may be taken back from a lost worker",
                ) {
                    Ok(n) => o.max_lost = Some(n as u32),
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

#[cfg(test)]
mod tests;

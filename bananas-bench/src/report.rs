//! The figures of all runs, and how they are printed: a table for humans
//! and one JSON line for scripts.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

/// Whether a bigger or a smaller figure is better.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Better {
    /// A rate.
    Higher,
    /// A latency or a size.
    Lower,
}

/// One metric: its values over the runs, and its target if it has one.
#[derive(Debug)]
struct Metric {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Option<(f64, Better)>,
    values: Vec<f64>,
}

/// Every metric measured, in the order first recorded.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    metrics: Vec<Metric>,
}

impl Figures {
    /// Records one run's `value` of metric `key`.
    pub(crate) fn record(
        &mut self,
        key: &'static str,
        label: &'static str,
        unit: &'static str,
        target: Option<(f64, Better)>,
        value: f64,
    ) {
        match self.metrics.iter_mut().find(|m| m.key == key) {
            Some(m) => m.values.push(value),
            None => self.metrics.push(Metric {
                key,
                label,
                unit,
                target,
                values: vec![value],
            }),
        }
    }

    /// The table for humans.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<44} {:>12} {:>25} {:>12}  verdict",
            "metric (median of runs)", "median", "min .. max", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(108));
        for m in &self.metrics {
            let med = median(&m.values);
            let (lo, hi) = min_max(&m.values);
            let (target, verdict) = match m.target {
                Some((t, Better::Higher)) => (
                    format!(">= {}", num(t)),
                    if med >= t { "meets" } else { "MISSES" },
                ),
                Some((t, Better::Lower)) => (
                    format!("<= {}", num(t)),
                    if med <= t { "meets" } else { "MISSES" },
                ),
                None => (String::new(), ""),
            };
            let _ = writeln!(
                out,
                "{:<44} {:>12} {:>25} {:>12}  {verdict}",
                format!("{} ({})", m.label, m.unit),
                num(med),
                format!("{} .. {}", num(lo), num(hi)),
                target,
            );
        }
        out
    }

    /// One JSON object: `context`, then every metric's median under its key,
    /// and every run's values under `runs`.
    pub(crate) fn json(&self, context: Map<String, Value>) -> Value {
        let mut obj = context;
        let mut runs = Map::new();
        for m in &self.metrics {
            obj.insert(m.key.to_owned(), json!(round(median(&m.values))));
            let vals: Vec<f64> = m.values.iter().copied().map(round).collect();
            runs.insert(m.key.to_owned(), json!(vals));
        }
        obj.insert("runs_values".to_owned(), Value::Object(runs));
        Value::Object(obj)
    }
}

/// The median (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn round(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 100.0).round() / 100.0
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.2}", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn json_has_medians_and_runs() {
        let mut f = Figures::default();
        f.record("rate", "rate", "jobs/s", None, 10.0);
        f.record("rate", "rate", "jobs/s", None, 30.0);
        f.record("rate", "rate", "jobs/s", None, 20.0);
        let v = f.json(Map::new());
        assert_eq!(v["rate"], json!(20.0));
        assert_eq!(v["runs_values"]["rate"], json!([10.0, 30.0, 20.0]));
        assert!(f.table().contains("rate (jobs/s)"));
    }
}

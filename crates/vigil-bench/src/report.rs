//! Results: medians over runs, the Vigil/LDK ratio, and how they print.

use serde_json::{json, Value};

/// The median of `values` (the mean of the middle two for an even count).
///
/// # Panics
///
/// If `values` is empty or holds a NaN.
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "a median needs at least one run");
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("measurements are numbers"));
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
///
/// # Panics
///
/// If `values` is empty or holds a NaN.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    assert!(!values.is_empty(), "a percentile needs at least one value");
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("measurements are numbers"));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario (and its case, e.g. `restart c=100 h=1000`).
    pub scenario: String,
    /// What the numbers count.
    pub unit: &'static str,
    /// Vigil's median.
    pub vigil: f64,
    /// LDK's median, when LDK has an equivalent.
    pub ldk: Option<f64>,
    /// Every run's value: Vigil's, then LDK's.
    pub runs: (Vec<f64>, Vec<f64>),
    /// Whether a higher number is better (throughput) or a lower one
    /// (time, bytes).
    pub higher_is_better: bool,
    /// Anything else the scenario reports.
    pub extra: Value,
}

impl Row {
    /// A row from the runs of both sides.
    pub fn new(
        scenario: impl Into<String>,
        unit: &'static str,
        higher_is_better: bool,
        vigil: Vec<f64>,
        ldk: Vec<f64>,
    ) -> Self {
        Row {
            scenario: scenario.into(),
            unit,
            vigil: median(&vigil),
            ldk: (!ldk.is_empty()).then(|| median(&ldk)),
            runs: (vigil, ldk),
            higher_is_better,
            extra: Value::Null,
        }
    }

    /// With more to report.
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }

    /// Vigil / LDK.
    pub fn ratio(&self) -> Option<f64> {
        self.ldk.filter(|l| *l > 0.0).map(|l| self.vigil / l)
    }

    /// The row as one JSON object.
    pub fn to_json(&self) -> Value {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "scenario": self.scenario,
            "unit": self.unit,
            "vigil": round(self.vigil),
            "ldk": self.ldk.map(round),
            "ratio": self.ratio().map(round),
            "higher_is_better": self.higher_is_better,
            "runs": { "vigil": self.runs.0.iter().map(|x| round(*x)).collect::<Vec<_>>(),
                      "ldk": self.runs.1.iter().map(|x| round(*x)).collect::<Vec<_>>() },
            "extra": self.extra,
        })
    }

    /// The row for people.
    pub fn to_text(&self) -> String {
        let ldk = self.ldk.map_or_else(|| "-".to_string(), |l| format!("{l:.1}"));
        let ratio = self.ratio().map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
        let better = if self.higher_is_better { "higher is better" } else { "lower is better" };
        format!(
            "{:<28} vigil {:>12.1}  ldk {:>12}  ratio {:>7}  {} ({better}, {} runs)",
            self.scenario,
            self.vigil,
            ldk,
            ratio,
            self.unit,
            self.runs.0.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_percentiles_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let row = Row::new("x", "payments/s", true, vec![10.0, 30.0, 20.0], vec![5.0, 10.0, 15.0]);
        assert_eq!(row.ratio(), Some(2.0));
        assert_eq!(row.to_json()["ratio"], 2.0);
        assert_eq!(Row::new("y", "ms", false, vec![1.0], vec![]).to_json()["ldk"], Value::Null);
    }
}

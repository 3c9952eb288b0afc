//! Median and spread over rounds, and percentiles over latency samples.

use serde::Serialize;

/// The median of a figure over rounds, with the lowest and highest value, so
/// a reader sees how much the rounds disagreed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds produced the figure.
    pub n: usize,
}

impl Spread {
    /// `None` when no value is finite (e.g. no round served a request).
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max − min) / median, in percent: the noise between rounds.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) * 100.0 / self.median
        }
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians_with_spread() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!(
            s,
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0,
                n: 3
            })
        );
        let s = Spread::of(&[10.0, 40.0, 20.0, 30.0]);
        assert_eq!(
            s.map(|s| (s.median, s.min, s.max)),
            Some((25.0, 10.0, 40.0))
        );
        assert_eq!(s.map(|s| s.spread_pct()), Some(120.0));
    }

    #[test]
    fn empty_and_non_finite_values_are_skipped() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN, f64::INFINITY]), None);
        assert_eq!(
            Spread::of(&[f64::NAN, 5.0]).map(|s| (s.median, s.n)),
            Some((5.0, 1))
        );
        let zero = Spread::of(&[0.0, 0.0]);
        assert_eq!(zero.map(|s| s.spread_pct()), Some(0.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}

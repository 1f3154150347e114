//! Aggregation of numeric answers (ratings) per task.

/// How to summarise a task's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RatingMethod {
    /// Arithmetic mean; dispersion: sample standard deviation (0 for one answer).
    Mean,
    /// Median (the mean of the two middle values for an even count); dispersion: median
    /// absolute deviation from the median.
    Median,
    /// Mean after dropping `⌊n · proportion⌋` values from each end; dispersion: sample standard
    /// deviation of the values kept. `proportion` is in `[0, 0.5)`.
    TrimmedMean { proportion: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingSummary {
    pub value: f64,
    pub dispersion: f64,
    /// Number of answers summarised (before trimming).
    pub count: usize,
}

/// Summarises one task's values; `None` for no values. NaN values must be filtered by the caller.
pub fn summarise(values: &mut [f64], method: RatingMethod) -> Option<RatingSummary> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let count = values.len();
    let (value, dispersion) = match method {
        RatingMethod::Mean => (mean(values), sample_std(values)),
        RatingMethod::Median => {
            let m = median_sorted(values);
            let mut deviations: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
            deviations.sort_unstable_by(f64::total_cmp);
            (m, median_sorted(&deviations))
        }
        RatingMethod::TrimmedMean { proportion } => {
            let cut = (count as f64 * proportion.clamp(0.0, 0.499_999)).floor() as usize;
            let kept = &values[cut..count - cut];
            (mean(kept), sample_std(kept))
        }
    };
    Some(RatingSummary {
        value,
        dispersion,
        count,
    })
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn median_sorted(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_a_small_sample() {
        let data = [4.0, 1.0, 3.0, 2.0, 100.0];
        let mean = summarise(&mut data.clone(), RatingMethod::Mean).unwrap();
        assert_eq!(mean.value, 22.0);
        let median = summarise(&mut data.clone(), RatingMethod::Median).unwrap();
        assert_eq!((median.value, median.dispersion), (3.0, 1.0));
        let trimmed = summarise(
            &mut data.clone(),
            RatingMethod::TrimmedMean { proportion: 0.2 },
        )
        .unwrap();
        assert_eq!(trimmed.value, 3.0);
        assert_eq!(trimmed.count, 5);
        assert!(summarise(&mut [], RatingMethod::Mean).is_none());
        assert_eq!(
            summarise(&mut [5.0], RatingMethod::Mean)
                .unwrap()
                .dispersion,
            0.0
        );
    }
}

//! Medians and spreads of repeated measurements.

/// Median of `values` (mean of the middle two for an even count); `None`
/// when empty.
///
/// ```
/// use fastnet_bench_echo::stats::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
/// assert_eq!(median(&[]), None);
/// ```
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Smallest and largest of `values`.
pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|x| x.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x))))
}

/// (largest - smallest) / median, as a fraction: how much repetitions
/// disagreed.
///
/// ```
/// use fastnet_bench_echo::stats::spread;
/// assert_eq!(spread(&[90.0, 100.0, 110.0]), Some(0.2));
/// ```
pub fn spread(values: &[f64]) -> Option<f64> {
    let (lo, hi) = min_max(values)?;
    let m = median(values)?;
    (m != 0.0).then(|| (hi - lo) / m)
}

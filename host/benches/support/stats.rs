//! Summaries of what a benchmark measured many times.

/// The value at fraction `p` (0.5 the median, 0.99 the 99th percentile) of
/// `sorted`, ascending and not empty: the nearest rank.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

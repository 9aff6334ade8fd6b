//! Batch sizes of a rollout (`--batches 1,25%,100%`), shared by `apply` and `publish`.

use anyhow::{bail, Context as _};

/// The cumulative number of targets after each batch: `1,25%,100%` of 8 is 1, 2, 8.
pub fn batch_sizes(spec: &str, targets: usize) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let size = match part.strip_suffix('%') {
            Some(percent) => {
                let percent: f64 = percent
                    .parse()
                    .with_context(|| format!("`{part}` in --batches is not a percentage"))?;
                if !(0.0..=100.0).contains(&percent) {
                    bail!("`{part}` in --batches is not between 0% and 100%");
                }
                ((targets as f64) * percent / 100.0).ceil() as usize
            }
            None => part
                .parse()
                .with_context(|| format!("`{part}` in --batches is not a count or a percentage"))?,
        };
        out.push(size.min(targets));
    }
    if out.last() != Some(&targets) {
        out.push(targets);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::batch_sizes;

    #[test]
    fn batches_are_cumulative_counts_or_percentages() {
        assert_eq!(batch_sizes("1,25%,100%", 8).unwrap(), [1, 2, 8]);
        assert_eq!(batch_sizes("100%", 3).unwrap(), [3]);
        assert_eq!(batch_sizes("1", 3).unwrap(), [1, 3]);
        assert_eq!(batch_sizes("50%", 3).unwrap(), [2, 3]);
        assert!(batch_sizes("ten", 3).is_err());
        assert!(batch_sizes("150%", 3).is_err());
    }
}

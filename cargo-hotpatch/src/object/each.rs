//! Work on each of a crate's objects at once, on every core.
//!
//! A patch build reads, rewrites and fingerprints every codegen unit of the rebuilt crate (200 on
//! the 6,400-line depot, 33 MB with debug information), and nothing else runs meanwhile: rustc has
//! exited, so each core takes a share of the objects.

use std::num::NonZeroUsize;

/// `work` applied to each item, on up to one thread per core, in the order of `items`.
pub fn each_at_once<T, R, F>(items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    if threads < 2 || items.len() < 2 {
        return items.iter().map(work).collect();
    }
    let share = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let shares: Vec<_> = items
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>()))
            .collect();
        shares
            .into_iter()
            .flat_map(|share| match share.join() {
                Ok(results) => results,
                // A panic in `work` is a bug: it goes on in the caller's thread.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_of_the_items() {
        let items: Vec<u32> = (0..1000).collect();
        let squares = each_at_once(&items, |n| n * n);
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert!(each_at_once(&[] as &[u32], |n| *n).is_empty());
    }
}

//! An attribute macro on a `#[hot]` function is part of the code its slot starts with, whether it
//! is written above or below `#[hot]`: replacing the function through the table (as a patch does)
//! replaces its span too, and the entry that dispatches adds none of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use hotreload_runtime::{hot, Table, Update};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Spans opened, by the functions below.
static SPANS: AtomicU64 = AtomicU64::new(0);

struct CountingSpans;

impl Subscriber for CountingSpans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        SPANS.fetch_add(1, Ordering::SeqCst);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// `skip` names an argument: the macro sees the user's names, not the dispatch's.
#[hot]
#[tracing::instrument(skip(step))]
fn hot_above(x: u64, step: u8) -> u64 {
    x + u64::from(step)
}

#[tracing::instrument(skip(step))]
#[hot]
fn hot_below(x: u64, step: u8) -> u64 {
    x + u64::from(step)
}

fn untraced(x: u64, step: u8) -> u64 {
    x + 2 * u64::from(step)
}

fn spans() -> u64 {
    SPANS.load(Ordering::SeqCst)
}

#[test]
fn a_replaced_function_takes_its_attribute_macros_with_it_in_either_order() {
    tracing::subscriber::set_global_default(CountingSpans).expect("the only subscriber");
    let table = Table::global();
    for (key, call) in [
        (
            "attribute_order::hot_above",
            hot_above as fn(u64, u8) -> u64,
        ),
        ("attribute_order::hot_below", hot_below),
    ] {
        let before = spans();
        assert_eq!(call(1, 1), 2);
        assert_eq!(spans(), before + 1, "{key} opens its span");

        let function = table.function(key).unwrap();
        let update = Update::new("untraced")
            .replace(function, untraced as fn(u64, u8) -> u64)
            .unwrap();
        table.commit(update).unwrap();
        assert_eq!(call(1, 1), 3);
        assert_eq!(
            spans(),
            before + 1,
            "{key} replaced by code without a span opens none"
        );

        table.rollback().unwrap();
        assert_eq!(call(1, 1), 2);
        assert_eq!(spans(), before + 2, "{key}'s own code opens its span again");
    }
}

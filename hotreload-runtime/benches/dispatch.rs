//! What a call costs: direct, through an atomic function pointer, through `#[hot]` (free function,
//! method, async fn; before a patch, and after one that installed contained entries, as under
//! `watch`), and an idle `safe_point()`.
//!
//! `cargo bench -p hotreload-runtime --bench dispatch`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use hotreload_runtime::{hot, Table, Update};

#[inline(never)]
fn direct(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

/// Set at run time (see `point_baselines_at_slots`) so the compiler cannot fold the load into a
/// direct call.
static POINTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// The baseline `#[hot]` is held to: one atomic load and an indirect call, inlined at the call site
/// like the `#[hot]` wrapper is.
#[inline(always)]
fn through_atomic_pointer(qty: u64, price: u64) -> u64 {
    // SAFETY: POINTER only ever holds the code of `hot_fee`, of this type.
    let code: fn(u64, u64) -> u64 = unsafe { std::mem::transmute(POINTER.load(Ordering::Acquire)) };
    code(qty, price)
}

#[hot]
fn hot_fee(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

/// Can panic (an index out of bounds), so its contained entry keeps a landing pad.
#[hot]
fn hot_lookup(values: &[u64], at: usize) -> u64 {
    values[at]
}

/// Set at run time like `POINTER`: the baseline for `hot_lookup`.
static LOOKUP_POINTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

#[inline(always)]
fn lookup_through_atomic_pointer(values: &[u64], at: usize) -> u64 {
    // SAFETY: LOOKUP_POINTER only ever holds the code of `hot_lookup`, of this type.
    let code: fn(&[u64], usize) -> u64 =
        unsafe { std::mem::transmute(LOOKUP_POINTER.load(Ordering::Acquire)) };
    code(values, at)
}

struct Pricing {
    base: u64,
}

#[hot]
impl Pricing {
    fn fee(&self, qty: u64, price: u64) -> u64 {
        qty * price / 1000 + self.base
    }
}

/// Set at run time like `POINTER`: the baseline for a method call.
static METHOD_POINTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

#[inline(always)]
fn method_through_atomic_pointer(pricing: &Pricing, qty: u64, price: u64) -> u64 {
    // SAFETY: METHOD_POINTER only ever holds the code of `Pricing::fee`, of this type.
    let code: fn(&Pricing, u64, u64) -> u64 =
        unsafe { std::mem::transmute(METHOD_POINTER.load(Ordering::Acquire)) };
    code(pricing, qty, price)
}

async fn plain_async(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

#[hot]
async fn hot_async(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// Commits an update that gives `hot_fee` and `Pricing::fee` their contained entries.
fn patch_with_contained_entries() {
    let mut update = Update::new("contained entries");
    for key in [
        "dispatch::hot_fee",
        "dispatch::Pricing::fee",
        "dispatch::hot_lookup",
    ] {
        let function = hotreload_runtime::function(key).expect("a hot function of this bench");
        // SAFETY: a function's contained entry has its slot's type and is part of this binary.
        update = unsafe { update.replace_raw(function, function.contained()) };
    }
    Table::global().commit(update).expect("nothing to wait for");
}

/// Points each atomic-pointer baseline at the code its `#[hot]` counterpart's slot holds now, so
/// that both call the very same bytes and differ only in how they reach them (a copy of the same
/// code elsewhere runs faster or slower with its alignment alone).
fn point_baselines_at_slots() {
    let code = |key: &str| {
        let function = hotreload_runtime::function(key).expect("a hot function of this bench");
        black_box(function.slot().get() as *mut ())
    };
    POINTER.store(code("dispatch::hot_fee"), Ordering::Release);
    METHOD_POINTER.store(code("dispatch::Pricing::fee"), Ordering::Release);
    LOOKUP_POINTER.store(code("dispatch::hot_lookup"), Ordering::Release);
}

fn calls(c: &mut Criterion) {
    point_baselines_at_slots();
    let mut group = c.benchmark_group("call");
    group.bench_function("direct", |b| {
        b.iter(|| direct(black_box(12), black_box(3456)))
    });
    group.bench_function("atomic_fn_pointer", |b| {
        b.iter(|| through_atomic_pointer(black_box(12), black_box(3456)))
    });
    group.bench_function("hot_fn", |b| {
        b.iter(|| hot_fee(black_box(12), black_box(3456)))
    });
    let pricing = Pricing { base: 0 };
    group.bench_function("atomic_fn_pointer_method", |b| {
        b.iter(|| {
            method_through_atomic_pointer(black_box(&pricing), black_box(12), black_box(3456))
        })
    });
    group.bench_function("hot_method", |b| {
        b.iter(|| black_box(&pricing).fee(black_box(12), black_box(3456)))
    });
    let values = [1u64, 2, 3, 4];
    group.bench_function("atomic_fn_pointer_lookup", |b| {
        b.iter(|| lookup_through_atomic_pointer(black_box(&values), black_box(2)))
    });
    group.bench_function("hot_lookup", |b| {
        b.iter(|| hot_lookup(black_box(&values), black_box(2)))
    });
    // After a patch under `watch` (rollback on panic on), slots hold contained entries: each
    // function's own here, as a patch's would be.
    patch_with_contained_entries();
    point_baselines_at_slots();
    group.bench_function("atomic_fn_pointer_lookup_patched", |b| {
        b.iter(|| lookup_through_atomic_pointer(black_box(&values), black_box(2)))
    });
    group.bench_function("atomic_fn_pointer_patched", |b| {
        b.iter(|| through_atomic_pointer(black_box(12), black_box(3456)))
    });
    group.bench_function("atomic_fn_pointer_method_patched", |b| {
        b.iter(|| {
            method_through_atomic_pointer(black_box(&pricing), black_box(12), black_box(3456))
        })
    });
    group.bench_function("hot_lookup_patched", |b| {
        b.iter(|| hot_lookup(black_box(&values), black_box(2)))
    });
    group.bench_function("hot_fn_patched", |b| {
        b.iter(|| hot_fee(black_box(12), black_box(3456)))
    });
    group.bench_function("hot_method_patched", |b| {
        b.iter(|| black_box(&pricing).fee(black_box(12), black_box(3456)))
    });
    group.bench_function("plain_async_fn", |b| {
        b.iter(|| block_on(plain_async(black_box(12), black_box(3456))))
    });
    group.bench_function("hot_async_fn", |b| {
        b.iter(|| block_on(hot_async(black_box(12), black_box(3456))))
    });
    group.finish();

    hotreload_runtime::safe_point();
    c.bench_function("safe_point_idle", |b| b.iter(hotreload_runtime::safe_point));
}

criterion_group!(benches, calls);
criterion_main!(benches);

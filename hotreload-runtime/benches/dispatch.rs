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

/// Set at run time (see `calls`) so the compiler cannot fold the load into a direct call.
static POINTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// The baseline `#[hot]` is held to: one atomic load and an indirect call, inlined at the call site
/// like the `#[hot]` wrapper is.
#[inline(always)]
fn through_atomic_pointer(qty: u64, price: u64) -> u64 {
    // SAFETY: POINTER only ever holds `direct`.
    let code: fn(u64, u64) -> u64 = unsafe { std::mem::transmute(POINTER.load(Ordering::Acquire)) };
    code(qty, price)
}

#[hot]
fn hot_fee(qty: u64, price: u64) -> u64 {
    qty * price / 1000
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

fn pricing_fee(pricing: &Pricing, qty: u64, price: u64) -> u64 {
    qty * price / 1000 + pricing.base
}

/// Set at run time like `POINTER`: the baseline for a method call.
static METHOD_POINTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

#[inline(always)]
fn method_through_atomic_pointer(pricing: &Pricing, qty: u64, price: u64) -> u64 {
    // SAFETY: METHOD_POINTER only ever holds `pricing_fee`.
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
    for key in ["dispatch::hot_fee", "dispatch::Pricing::fee"] {
        let function = hotreload_runtime::function(key).expect("a hot function of this bench");
        // SAFETY: a function's contained entry has its slot's type and is part of this binary.
        update = unsafe { update.replace_raw(function, function.contained()) };
    }
    Table::global().commit(update).expect("nothing to wait for");
}

fn calls(c: &mut Criterion) {
    POINTER.store(
        black_box(direct as fn(u64, u64) -> u64 as *mut ()),
        Ordering::Release,
    );
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
    METHOD_POINTER.store(
        black_box(pricing_fee as fn(&Pricing, u64, u64) -> u64 as *mut ()),
        Ordering::Release,
    );
    group.bench_function("atomic_fn_pointer_method", |b| {
        b.iter(|| {
            method_through_atomic_pointer(black_box(&pricing), black_box(12), black_box(3456))
        })
    });
    group.bench_function("hot_method", |b| {
        b.iter(|| black_box(&pricing).fee(black_box(12), black_box(3456)))
    });
    // After a patch under `watch` (rollback on panic on), slots hold contained entries: each
    // function's own here, as a patch's would be.
    patch_with_contained_entries();
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

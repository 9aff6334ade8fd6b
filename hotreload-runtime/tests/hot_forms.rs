//! `#[hot]` on every supported form: each still behaves like the plain function, is registered
//! under its key, and can be replaced through the table.

use std::sync::Mutex;

use hotreload_runtime::{hot, Table, Update};

/// The tests that commit to the table and roll back, and the one that calls `Square::area`, take
/// turns: a rollback undoes the last commit, whoever made it.
static SQUARE: Mutex<()> = Mutex::new(());

/// Doc comments stay.
#[hot]
#[must_use]
pub fn fee(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

#[hot]
fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        b
    }
}

#[hot]
fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

#[hot]
fn patterns((a, b): (u32, u32), mut c: u32, _: u8) -> u32 {
    c += 1;
    a + b + c
}

#[hot]
fn early_return(x: i32) -> Result<i32, String> {
    if x < 0 {
        return Err(format!("negative: {x}"));
    }
    let parsed: i32 = "7"
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(x + parsed)
}

/// Reads a `u32`.
///
/// # Safety
/// `p` must point to a live, aligned `u32`.
#[hot]
unsafe fn read_raw(p: *const u32) -> u32 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *p }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    count: u32,
    name: String,
}

#[hot]
impl Counter {
    pub fn new(name: &str) -> Self {
        Counter {
            count: 0,
            name: name.to_owned(),
        }
    }

    pub fn get(&self) -> u32 {
        self.count
    }

    pub fn bump(&mut self, by: u32) -> u32 {
        self.count += by;
        self.count
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn into_name(mut self) -> String {
        self.name.push('!');
        self.name
    }

    pub fn boxed(self: Box<Self>) -> u32 {
        self.count
    }

    pub async fn later(&self, extra: &str) -> String {
        tokio::task::yield_now().await;
        format!("{}{extra}", self.name)
    }
}

pub trait Shape {
    type Unit;
    fn area(&self) -> u64;
    fn unit(&self) -> Self::Unit;
}

pub struct Square(u64);

#[hot]
impl Shape for Square {
    type Unit = &'static str;

    fn area(&self) -> u64 {
        self.0 * self.0
    }

    fn unit(&self) -> Self::Unit {
        "m2"
    }
}

#[hot]
impl std::fmt::Display for Square {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "square of {}", self.0)
    }
}

/// A `#[hot]` block with methods that cannot sit in a slot: they stay ordinary methods.
pub struct Key {
    name: String,
}

#[hot]
impl Key {
    /// `impl Trait` argument: generic, so not hot.
    pub fn new(name: impl ToString) -> Self {
        Key {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Generic: not hot.
    pub fn largest<T: PartialOrd + Copy>(&self, items: &[T]) -> T {
        items
            .iter()
            .copied()
            .fold(items[0], |a, b| if b > a { b } else { a })
    }

    /// `const fn`: not hot, and still usable in const contexts.
    pub const fn limit() -> usize {
        8
    }

    pub fn shout(&self) -> String {
        self.name.to_uppercase()
    }
}

const KEY_LIMIT: usize = Key::limit();

#[hot]
async fn fetch(key: &str, times: usize) -> String {
    let mut out = String::new();
    for _ in 0..times {
        tokio::task::yield_now().await;
        out.push_str(key);
    }
    out
}

#[hot(?Send)]
async fn not_send(n: u32) -> u32 {
    let rc = std::rc::Rc::new(n);
    tokio::task::yield_now().await;
    *rc + 1
}

#[test]
fn hot_functions_behave_like_plain_ones() {
    assert_eq!(fee(10, 500), 5);
    assert_eq!(longest("ab", "abc"), "abc");
    assert_eq!(first_word("hello world"), "hello");
    assert_eq!(patterns((1, 2), 3, 0), 7);
    assert_eq!(early_return(1), Ok(8));
    assert_eq!(early_return(-1), Err("negative: -1".to_owned()));
    let value = 41;
    // SAFETY: a valid pointer to a live u32.
    assert_eq!(unsafe { read_raw(&value) }, 41);
}

#[test]
fn hot_methods_behave_like_plain_ones() {
    let _turn = SQUARE.lock().unwrap_or_else(|p| p.into_inner());
    let mut counter = Counter::new("c");
    assert_eq!(counter.bump(2), 2);
    assert_eq!(counter.get(), 2);
    assert_eq!(counter.name(), "c");
    assert_eq!(Box::new(counter.clone()).boxed(), 2);
    assert_eq!(counter.into_name(), "c!");
    let square = Square(3);
    assert_eq!(square.area(), 9);
    assert_eq!(square.unit(), "m2");
    assert_eq!(square.to_string(), "square of 3");
}

#[test]
fn hot_async_functions_behave_like_plain_ones() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(fetch("ab", 3).await, "ababab");
        assert_eq!(Counter::new("x").later("y").await, "xy");
        assert_eq!(not_send(1).await, 2);
    });
}

#[test]
fn every_hot_function_is_registered_under_its_key() {
    let keys: Vec<String> = hotreload_runtime::functions()
        .iter()
        .map(|f| f.key.to_string())
        .collect();
    for expected in [
        "hot_forms::fee",
        "hot_forms::longest",
        "hot_forms::Counter::new",
        "hot_forms::Counter::bump",
        "hot_forms::Counter::later",
        "<hot_forms::Square as Shape>::area",
        "<hot_forms::Square as std::fmt::Display>::fmt",
        "hot_forms::fetch",
    ] {
        assert!(
            keys.contains(&expected.to_owned()),
            "{expected} missing from {keys:?}"
        );
    }
    let fetch = hotreload_runtime::function("hot_forms::fetch").unwrap();
    assert!(fetch.is_async());
}

fn fee_v2(qty: u64, price: u64) -> u64 {
    qty * price / 100
}

fn area_v2(square: &Square) -> u64 {
    square.0 * 4
}

#[test]
fn a_typed_replacement_is_checked_against_the_slot_type() {
    let _turn = SQUARE.lock().unwrap_or_else(|p| p.into_inner());
    let table = Table::global();
    let area = table
        .function("<hot_forms::Square as Shape>::area")
        .unwrap();
    // Wrong type: refused before anything changes.
    let error = Update::new("wrong")
        .replace(area, fee_v2 as fn(u64, u64) -> u64)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("<hot_forms::Square as Shape>::area"),
        "{error}"
    );
    assert_eq!(Square(3).area(), 9);

    let update = Update::new("area v2")
        .replace(area, area_v2 as fn(&Square) -> u64)
        .unwrap();
    let report = table.commit(update).unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(Square(3).area(), 12);
    table.rollback().unwrap();
    assert_eq!(Square(3).area(), 9);
}

fn shout_v2(key: &Key) -> String {
    format!("{}!", key.name)
}

#[test]
fn methods_that_cannot_be_hot_stay_ordinary_beside_hot_ones() {
    let _turn = SQUARE.lock().unwrap_or_else(|p| p.into_inner());
    let key = Key::new(42);
    assert_eq!(key.name(), "42");
    assert_eq!(key.largest(&[3, 9, 2]), 9);
    assert_eq!(KEY_LIMIT, 8);
    assert_eq!(key.shout(), "42");

    let keys: Vec<String> = hotreload_runtime::functions()
        .iter()
        .map(|f| f.key.to_string())
        .collect();
    for hot in ["hot_forms::Key::name", "hot_forms::Key::shout"] {
        assert!(keys.iter().any(|k| k == hot), "{hot} missing from {keys:?}");
    }
    for cold in ["new", "largest", "limit"] {
        let key = format!("hot_forms::Key::{cold}");
        assert!(!keys.contains(&key), "{key} is not hot: {keys:?}");
        assert!(hotreload_runtime::function(&key).is_err());
    }

    // The hot ones are replaced through the table as usual; the cold ones are untouched.
    let table = Table::global();
    let shout = table.function("hot_forms::Key::shout").unwrap();
    let update = Update::new("shout v2")
        .replace(shout, shout_v2 as fn(&Key) -> String)
        .unwrap();
    table.commit(update).unwrap();
    assert_eq!(Key::new("a").shout(), "a!");
    assert_eq!(Key::new("a").name(), "a");
    table.rollback().unwrap();
    assert_eq!(Key::new("a").shout(), "A");
}

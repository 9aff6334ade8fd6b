//! Twin of `ui/impl-block-nothing-hot.rs` and `ui/impl-block-method-marked-hot.rs`: the methods
//! of a `#[hot]` impl block that cannot sit in a slot (the lone-function cases of `ui/`), not
//! marked `#[hot]` themselves and beside methods that can, stay ordinary methods and keep
//! working, `const fn` in const contexts included. `hot_forms.rs` checks which the table lists.

use hotreload_runtime::hot;

pub struct Key {
    name: String,
}

#[hot]
impl Key {
    pub fn new(name: impl ToString) -> Self {
        Key {
            name: name.to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.name.len()
    }

    pub fn largest<T: PartialOrd + Copy>(&self, items: &[T]) -> T {
        let mut largest = items[0];
        for &item in items {
            if item > largest {
                largest = item;
            }
        }
        largest
    }

    pub fn sum<const N: usize>(values: [u32; N]) -> u32 {
        values.iter().sum()
    }

    pub const fn double(x: u32) -> u32 {
        x * 2
    }

    pub extern "C" fn callback(x: i32) -> i32 {
        x + 1
    }

    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.name.chars()
    }

    pub fn pick<'a, 'b: 'a>(&'a self, other: &'b str) -> &'a str {
        if self.name.len() >= other.len() {
            &self.name
        } else {
            other
        }
    }

    pub fn total(values: &[u32]) -> u32
    where
        u32: Copy,
    {
        values.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }
}

/// A trait impl with a generic method beside a plain one.
pub trait Describe {
    fn describe(&self) -> String;
    fn describe_with<T: std::fmt::Display>(&self, extra: T) -> String;
}

#[hot]
impl Describe for Key {
    fn describe_with<T: std::fmt::Display>(&self, extra: T) -> String {
        format!("{}{extra}", self.describe())
    }

    fn describe(&self) -> String {
        format!("key {}", self.name)
    }
}

const DOUBLED: u32 = Key::double(21);

fn main() {
    let key = Key::new(7);
    assert_eq!(key.len(), 1);
    assert!(!key.is_empty());
    assert_eq!(key.largest(&[3, 9, 2]), 9);
    assert_eq!(Key::sum([1, 2, 3, 4]), 10);
    assert_eq!(DOUBLED, 42);
    assert_eq!(Key::callback(1), 2);
    assert_eq!(key.chars().count(), 1);
    assert_eq!(key.pick("long"), "long");
    assert_eq!(Key::total(&[1, 2]), 3);
    assert_eq!(key.describe_with('!'), "key 7!");
}

//! The lists a comparison of fingerprints gives: what a save changed (for reports), what differs
//! from the base (for entry redirects), whose signature changed, and which changes are hot.

use std::collections::{BTreeMap, BTreeSet};

/// A function's code and references, as comparable text: equal fingerprints, equal behaviour.
pub type Fingerprints = BTreeMap<String, String>;

/// Demangled names of the crate's own functions in `now` that are new or differ from `before`.
/// Instantiations of other crates' generic code are left out: which of them a crate's object
/// holds depends on how it was split into codegen units, not on what changed.
pub fn changed_functions(
    before: &Fingerprints,
    now: &Fingerprints,
    crate_name: &str,
) -> Vec<String> {
    let own = format!("{crate_name}::");
    let own_impl = format!("<{crate_name}::");
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for (name, fingerprint) in now {
        if before.get(name) != Some(fingerprint) {
            let demangled = format!("{:#}", rustc_demangle::demangle(name));
            if demangled.starts_with(&own) || demangled.starts_with(&own_impl) {
                changed.insert(demangled);
            }
        }
    }
    changed.into_iter().collect()
}

/// The (normalised, mangled) names of the functions in `now` whose code differs from `before`'s
/// function of the same name: those that are new are not in `before`'s program to redirect.
pub fn differing_functions(before: &Fingerprints, now: &Fingerprints) -> Vec<String> {
    now.iter()
        .filter(|(name, fingerprint)| before.get(*name).is_some_and(|old| old != *fingerprint))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The (normalised, mangled) names of the crate's own functions in `before` that `now` has only
/// under another symbol with the same path: their signature changed (rustc's legacy symbol hash
/// covers it).
pub fn resigned_functions(
    before: &Fingerprints,
    now: &Fingerprints,
    crate_name: &str,
) -> Vec<String> {
    let readable = |name: &String| format!("{:#}", rustc_demangle::demangle(name));
    let own = format!("{crate_name}::");
    // The crate's functions and its types' methods, trait impls included (`<krate::T as …>::f`).
    let is_own = |path: &String| {
        path.starts_with(&own) || path.strip_prefix('<').is_some_and(|p| p.starts_with(&own))
    };
    let renamed: BTreeSet<String> = now
        .keys()
        .filter(|name| !before.contains_key(*name))
        .map(readable)
        .filter(is_own)
        .collect();
    before
        .keys()
        .filter(|name| !now.contains_key(*name) && renamed.contains(&readable(name)))
        .cloned()
        .collect()
}

/// Splits changed functions into hot ones (shown by their path; their closures count as them),
/// which take effect at once, and other functions, which run where patched code calls them.
/// Code the macros and the compiler generate (registrations, drop glue) is left out.
pub fn classify_changes(changed: &[String]) -> (Vec<String>, Vec<String>) {
    let mut hot = BTreeSet::new();
    let mut other = BTreeSet::new();
    for name in changed {
        if let Some((head, tail)) = name.split_once("__hot_original_") {
            let method = tail.split("::").next().unwrap_or("");
            // `<T as Helper>::__hot_original_NAME_FP` is the method `T::NAME`.
            let path = match head.strip_prefix('<').and_then(|h| h.split_once(" as ")) {
                Some((ty, _)) => {
                    let name = method.rsplit_once('_').map_or(method, |(name, _)| name);
                    format!("{ty}::{name}")
                }
                None => head.trim_end_matches("::").to_owned(),
            };
            hot.insert(path);
        } else if !name.contains("__INVENTORY")
            // A hot function's contained entry: reported as the function, by its original.
            && !name.contains("__hot_contained")
            && !name.contains("__ctor")
            && !name.starts_with("core::ptr::drop_in_place")
        {
            other.insert(name.clone());
        }
    }
    // The hot function itself and the code that calls it (`T::f`, `<T as Trait>::f`, the
    // closures of either) are listed once, as hot.
    other.retain(|name| !is_part_of_hot(name, &hot));
    (hot.into_iter().collect(), other.into_iter().collect())
}

/// Whether `name` is one of the `hot` functions, under its own path or as a trait method, or a
/// closure of one.
fn is_part_of_hot(name: &str, hot: &BTreeSet<String>) -> bool {
    let path = match name
        .strip_prefix('<')
        .and_then(|rest| rest.split_once(" as "))
    {
        Some((ty, rest)) => match rest.split_once(">::") {
            Some((_, method)) => format!("{ty}::{method}"),
            None => name.to_owned(),
        },
        None => name.to_owned(),
    };
    hot.iter().any(|hot| {
        path == *hot
            || path
                .strip_prefix(hot.as_str())
                .is_some_and(|rest| rest.starts_with("::{{closure}}"))
    })
}

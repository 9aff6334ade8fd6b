//! Comparing type layouts (read from DWARF by [`crate::object::dwarf`]): which types a patch
//! changes, and which types a value of a given type holds.

use std::collections::{BTreeMap, BTreeSet};

use crate::object::dwarf::Layouts;

/// The types whose layout differs between `before` and `now` (types only in one are new or gone).
pub fn changed(before: &Layouts, now: &Layouts) -> Vec<String> {
    now.iter()
        .filter(|(name, layout)| before.get(*name).is_some_and(|old| old != *layout))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The types of `layouts` that a value of `container` holds inline or behind a pointer, directly
/// or through other types of `layouts`, as their member types name them. A member names a type
/// of the same crate by its last path segment (`Tier`) or, inside generic arguments, by its path
/// (`Option<app::Tier>`); a last segment shared by two types is not followed, so the answer never
/// includes a type it only might hold.
pub fn held_by(layouts: &Layouts, container: &str) -> BTreeSet<String> {
    let mut short_names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in layouts.keys() {
        let short = name.rsplit("::").next().unwrap_or(name);
        short_names.entry(short).or_default().push(name);
    }
    let mut held = BTreeSet::new();
    let mut stack = vec![container.to_owned()];
    while let Some(current) = stack.pop() {
        let Some(description) = layouts.get(&current) else {
            continue;
        };
        for name in layouts.keys() {
            if held.contains(name) || *name == container {
                continue;
            }
            let short = name.rsplit("::").next().unwrap_or(name);
            let unique = short_names.get(short).is_some_and(|all| all.len() == 1);
            let by_short = unique && description.contains(&format!(":{short}:"));
            let by_path = description.contains(&format!("<{name}>"))
                || description.contains(&format!("<{name},"))
                || description.contains(&format!(" {name}>"))
                || description.contains(&format!(" {name},"));
            if by_short || by_path {
                held.insert(name.clone());
                stack.push(name.clone());
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layouts(entries: &[(&str, &str)]) -> Layouts {
        entries
            .iter()
            .map(|(name, description)| (name.to_string(), description.to_string()))
            .collect()
    }

    #[test]
    fn held_types_follow_members_directly_and_through_generics() {
        let all = layouts(&[
            (
                "app::Session",
                "(structure name=Session (member name=tier DW_AT_type=structure:Tier:1)(member name=box DW_AT_type=structure:Option<app::Wrapper>:8))",
            ),
            ("app::Tier", "(structure name=Tier)"),
            ("app::Wrapper", "(structure name=Wrapper (member name=x DW_AT_type=structure:Vec<app::Inner, alloc::alloc::Global>:24))"),
            ("app::Inner", "(structure name=Inner)"),
            ("app::Other", "(structure name=Other (member name=t DW_AT_type=structure:Tier:1))"),
        ]);
        let held = held_by(&all, "app::Session");
        assert_eq!(
            held.into_iter().collect::<Vec<_>>(),
            ["app::Inner", "app::Tier", "app::Wrapper"]
        );
        assert!(held_by(&all, "app::Tier").is_empty());
    }

    #[test]
    fn an_ambiguous_short_name_is_not_followed() {
        let all = layouts(&[
            (
                "app::Session",
                "(structure name=Session (member name=tier DW_AT_type=structure:Tier:1))",
            ),
            ("app::a::Tier", "(structure name=Tier)"),
            ("app::b::Tier", "(structure name=Tier)"),
        ]);
        assert!(held_by(&all, "app::Session").is_empty());
    }
}

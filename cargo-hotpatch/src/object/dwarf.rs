//! Type layouts, read from the DWARF the compiler wrote (a patch must not change the layout of a
//! type whose values already live in the running process, or new code would misread them).
//!
//! Each named struct, enum and union of the given crates is described by its DWARF subtree: sizes,
//! alignments, member names and offsets, member type names, enum discriminants. Types the compiler
//! makes for closures and async bodies (`{closure_env#0}`, `{async_fn_env#0}`) are left out: values
//! of them are only ever used by the code that created them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object as _, ObjectSection as _};

/// Qualified type name to a canonical description of its layout.
pub type Layouts = BTreeMap<String, String>;

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// The layouts of the types of `crates` described in the DWARF of a linked binary or library.
/// `None` when it carries no type information (built without debug info).
pub fn read(path: &Path, crates: &BTreeSet<String>) -> anyhow::Result<Option<Layouts>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let load = |id: gimli::SectionId| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|section| section.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, RunTimeEndian::Little));
    let mut layouts = Layouts::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut path = Vec::new();
        walk(&dwarf, &unit, root, &mut path, crates, &mut layouts)?;
    }
    Ok(Some(layouts))
}

fn walk(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    node: gimli::EntriesTreeNode<Reader>,
    path: &mut Vec<String>,
    crates: &BTreeSet<String>,
    layouts: &mut Layouts,
) -> anyhow::Result<()> {
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let entry = child.entry();
        let tag = entry.tag();
        if !matches!(
            tag,
            gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
        ) {
            continue;
        }
        let name = name_of(dwarf, unit, entry);
        match tag {
            // Most of a unit describes other crates (std, the dependencies): skip those subtrees.
            gimli::DW_TAG_namespace
                if path.is_empty() && !name.as_ref().is_some_and(|name| crates.contains(name)) => {}
            gimli::DW_TAG_namespace => {
                path.push(name.unwrap_or_default());
                walk(dwarf, unit, child, path, crates, layouts)?;
                path.pop();
            }
            gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type => {
                let Some(name) = name else { continue };
                let in_crate = path.first().is_some_and(|first| crates.contains(first));
                let generated = name.starts_with('{') || path.iter().any(|p| p.starts_with('{'));
                let declaration = entry.attr_value(gimli::DW_AT_declaration)?.is_some();
                if in_crate && !generated && !declaration {
                    let qualified = format!("{}::{name}", path.join("::"));
                    let mut description = String::new();
                    describe(dwarf, unit, child, &mut description)?;
                    layouts.entry(qualified).or_insert(description);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Appends a canonical text of an entry's layout and its children's.
fn describe(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    node: gimli::EntriesTreeNode<Reader>,
    out: &mut String,
) -> anyhow::Result<()> {
    let entry = node.entry();
    let _ = write!(out, "({}", entry.tag());
    if let Some(name) = name_of(dwarf, unit, entry) {
        let _ = write!(out, " name={name}");
    }
    for attribute in [
        gimli::DW_AT_byte_size,
        gimli::DW_AT_alignment,
        gimli::DW_AT_data_member_location,
        gimli::DW_AT_discr_value,
        gimli::DW_AT_const_value,
    ] {
        if let Some(value) = entry.attr_value(attribute)? {
            let _ = write!(out, " {attribute}={}", number(&value));
        }
    }
    for attribute in [gimli::DW_AT_type, gimli::DW_AT_discr] {
        if let Some(AttributeValue::UnitRef(offset)) = entry.attr_value(attribute)? {
            let referenced = unit.entry(offset)?;
            let size = referenced
                .attr_value(gimli::DW_AT_byte_size)?
                .map(|v| number(&v))
                .unwrap_or_default();
            let _ = write!(
                out,
                " {attribute}={}:{}:{size}",
                referenced.tag(),
                name_of(dwarf, unit, &referenced).unwrap_or_default()
            );
        }
    }
    let mut children = node.children();
    while let Some(child) = children.next()? {
        if matches!(
            child.entry().tag(),
            gimli::DW_TAG_subprogram | gimli::DW_TAG_template_type_parameter
        ) {
            continue;
        }
        describe(dwarf, unit, child, out)?;
    }
    out.push(')');
    Ok(())
}

fn name_of(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    let value = entry.attr_value(gimli::DW_AT_name).ok()??;
    let name = dwarf.attr_string(unit, value).ok()?;
    Some(name.to_string_lossy().into_owned())
}

fn number(value: &AttributeValue<Reader>) -> String {
    match value {
        AttributeValue::Udata(v) => v.to_string(),
        AttributeValue::Sdata(v) => v.to_string(),
        AttributeValue::Data1(v) => v.to_string(),
        AttributeValue::Data2(v) => v.to_string(),
        AttributeValue::Data4(v) => v.to_string(),
        AttributeValue::Data8(v) => v.to_string(),
        AttributeValue::Block(block) => format!("{:?}", block.slice()),
        other => format!("{other:?}"),
    }
}

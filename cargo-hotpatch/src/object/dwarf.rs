//! Type layouts, read from the DWARF the compiler wrote (a patch must not change the layout of a
//! type whose values already live in the running process, or new code would misread them).
//!
//! Each named struct, enum and union of the given crates is described by its DWARF subtree: sizes,
//! alignments, member names and offsets, member type names, enum discriminants. Types the compiler
//! makes for closures and async bodies (`{closure_env#0}`, `{async_fn_env#0}`) are left out: values
//! of them are only ever used by the code that created them.
//!
//! A description names the types it refers to (tag, name, size), never where their entries sit:
//! an optimised build's units refer to each other's types (`DW_FORM_ref_addr`, left by LLVM's
//! cross-unit inlining), and a type appears in several units, so a host binary and a patch
//! library describe the same layout from differently arranged entries.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object as _, ObjectSection as _};

/// Qualified type name to a canonical description of its layout.
pub type Layouts = BTreeMap<String, String>;

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;
type Unit<'a> = gimli::Unit<Reader<'a>>;

/// The layouts of the types of `crates` described in the DWARF of a linked binary or library.
/// `None` without debug information; debug information without types (`debug = 1` or
/// `"line-tables-only"`) gives no layouts, which the caller tells from the crates' invocations.
pub fn read(path: &Path, crates: &BTreeSet<String>) -> anyhow::Result<Option<Layouts>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|section| section.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load)?;
    let mut dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    // Units of one object share their abbreviations: parse them once.
    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
    let units = Units::new(&dwarf).with_context(|| format!("reading {}", path.display()))?;
    let mut layouts = Layouts::new();
    for unit in &units.units {
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut walk = Walk {
            units: &units,
            unit,
            crates,
            path: Vec::new(),
            layouts: &mut layouts,
        };
        walk.namespace(root)
            .with_context(|| format!("reading the debug information of {}", path.display()))?;
    }
    Ok(Some(layouts))
}

/// Every unit of a binary, parsed once, and where each starts: a reference into another unit
/// (`DW_FORM_ref_addr`) or to a type unit (`DW_FORM_ref_sig8`) is found by offset or signature.
struct Units<'a> {
    dwarf: &'a gimli::Dwarf<Reader<'a>>,
    /// The units of `.debug_info` in order (by offset), then those of `.debug_types`.
    units: Vec<Unit<'a>>,
    /// How many of `units` are `.debug_info`'s.
    info_units: usize,
    /// Type units: signature to the unit's index and the type's entry.
    signatures: HashMap<u64, (usize, gimli::UnitOffset)>,
}

/// Where a referenced entry is: its unit and its offset in it.
type Found<'u, 'a> = (&'u Unit<'a>, gimli::UnitOffset);

impl<'a> Units<'a> {
    fn new(dwarf: &'a gimli::Dwarf<Reader<'a>>) -> gimli::Result<Self> {
        let mut units = Vec::new();
        let mut signatures = HashMap::new();
        let mut remember = |units: &mut Vec<Unit<'a>>, header: gimli::UnitHeader<Reader<'a>>| {
            if let gimli::UnitType::Type {
                type_signature,
                type_offset,
            } = header.type_()
            {
                signatures.insert(type_signature.0, (units.len(), type_offset));
            }
            units.push(dwarf.unit(header)?);
            gimli::Result::Ok(())
        };
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            remember(&mut units, header)?;
        }
        let info_units = units.len();
        // DWARF 4's type units (`DW_FORM_ref_sig8`); rustc does not emit them by default.
        let mut headers = dwarf.type_units();
        while let Some(header) = headers.next()? {
            remember(&mut units, header)?;
        }
        Ok(Units {
            dwarf,
            units,
            info_units,
            signatures,
        })
    }

    /// The entry a reference attribute of `unit` points at, in whichever unit it sits.
    /// `None` for a form that names no entry of this file (a supplementary file's).
    fn resolve<'u>(
        &'u self,
        unit: &'u Unit<'a>,
        value: &AttributeValue<Reader<'a>>,
    ) -> Option<Found<'u, 'a>> {
        match *value {
            AttributeValue::UnitRef(offset) => Some((unit, offset)),
            AttributeValue::DebugInfoRef(offset) => {
                // The last unit starting at or before `offset`.
                let after = self.units[..self.info_units].partition_point(|u| {
                    u.header
                        .offset()
                        .as_debug_info_offset()
                        .is_some_and(|start| start <= offset)
                });
                let unit = self.units.get(after.checked_sub(1)?)?;
                Some((unit, offset.to_unit_offset(&unit.header)?))
            }
            AttributeValue::DebugTypesRef(signature) => {
                let (index, offset) = *self.signatures.get(&signature.0)?;
                Some((self.units.get(index)?, offset))
            }
            _ => None,
        }
    }

    fn name_of(&self, unit: &Unit<'a>, entry: &Entry<'_, 'a>) -> Option<String> {
        let value = entry.attr_value(gimli::DW_AT_name).ok()??;
        let name = self.dwarf.attr_string(unit, value).ok()?;
        Some(name.to_string_lossy().into_owned())
    }

    /// `tag:name:size` of the entry a reference attribute points at, wherever it sits.
    fn referenced(
        &self,
        unit: &Unit<'a>,
        value: &AttributeValue<Reader<'a>>,
    ) -> anyhow::Result<String> {
        let Some((unit, offset)) = self.resolve(unit, value) else {
            // Not an entry of this file: say what it was, so a difference still shows.
            return Ok(format!("unresolved {value:?}"));
        };
        let entry = unit.entry(offset)?;
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)?
            .map(|v| number(&v))
            .unwrap_or_default();
        Ok(format!(
            "{}:{}:{size}",
            entry.tag(),
            self.name_of(unit, &entry).unwrap_or_default()
        ))
    }
}

type Entry<'u, 'a> = gimli::DebuggingInformationEntry<'u, 'u, Reader<'a>>;

/// One unit's walk through its namespaces, collecting the layouts of `crates`' types.
struct Walk<'w, 'a> {
    units: &'w Units<'a>,
    unit: &'w Unit<'a>,
    crates: &'w BTreeSet<String>,
    /// The namespaces around the current entry.
    path: Vec<String>,
    layouts: &'w mut Layouts,
}

impl<'a> Walk<'_, 'a> {
    fn namespace(&mut self, node: gimli::EntriesTreeNode<Reader<'a>>) -> anyhow::Result<()> {
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
            let name = self.units.name_of(self.unit, entry);
            if tag == gimli::DW_TAG_namespace {
                // Most of a unit describes other crates (std, the dependencies): skip those.
                let other_crate = self.path.is_empty()
                    && !name.as_ref().is_some_and(|name| self.crates.contains(name));
                if !other_crate {
                    self.path.push(name.unwrap_or_default());
                    self.namespace(child)?;
                    self.path.pop();
                }
                continue;
            }
            let Some(name) = name else { continue };
            let in_crate = self.path.first().is_some_and(|c| self.crates.contains(c));
            let generated = name.starts_with('{') || self.path.iter().any(|p| p.starts_with('{'));
            let declaration = entry.attr_value(gimli::DW_AT_declaration)?.is_some();
            if in_crate && !generated && !declaration {
                let qualified = format!("{}::{name}", self.path.join("::"));
                if !self.layouts.contains_key(&qualified) {
                    let mut description = String::new();
                    self.describe(child, &mut description)?;
                    self.layouts.insert(qualified, description);
                }
            }
        }
        Ok(())
    }

    /// Appends a canonical text of an entry's layout and its children's.
    fn describe(
        &self,
        node: gimli::EntriesTreeNode<Reader<'a>>,
        out: &mut String,
    ) -> anyhow::Result<()> {
        let entry = node.entry();
        let _ = write!(out, "({}", entry.tag());
        if let Some(name) = self.units.name_of(self.unit, entry) {
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
            if let Some(value) = entry.attr_value(attribute)? {
                let referenced = self.units.referenced(self.unit, &value)?;
                let _ = write!(out, " {attribute}={referenced}");
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
            self.describe(child, out)?;
        }
        out.push(')');
        Ok(())
    }
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

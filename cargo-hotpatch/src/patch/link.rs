//! Linking a patch: the codegen units of a rebuilt crate merged into one object, and the objects
//! linked into the patch library.
//!
//! The toolchain's own `rust-lld` is called directly when the base recorded it: the compiler
//! driver in front of it (`cc`, `collect2`, the `ld.lld` wrapper) cost 12 ms of a 29 ms link.
//! `HOTPATCH_LINKER` names another compiler driver to link with instead.
//!
//! The library is linked with its debug information (the layout check reads it, relocated) and
//! then copied without it (or its symbol table) by [`StrippedCopy`], while the checks run: the
//! copy is what a process maps, for good.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _};

use crate::host::HostLocalData;
use crate::object::edit::retain_section;
use crate::object::elf::Elf;
use crate::object::read::{object_symbols, ObjectSymbols};
use crate::patch::changes::machine_code::normalise;
use crate::patch::redirect::reaches_across_objects;

/// The environment variable naming a compiler driver to link with instead of the toolchain's lld.
const LINKER_ENV: &str = "HOTPATCH_LINKER";

/// How a patch is linked.
#[derive(Debug, Clone)]
pub enum Linker {
    /// The toolchain's `rust-lld`, called as GNU `ld`.
    Lld(PathBuf),
    /// A compiler driver (`cc`), optionally told to use the toolchain's `ld.lld` from `lld_dir`.
    Driver {
        program: String,
        lld_dir: Option<PathBuf>,
    },
}

impl Linker {
    /// The linker for patches of a base whose toolchain has its `gcc-ld` directory at `lld_dir`.
    pub fn for_base(lld_dir: Option<&Path>) -> Self {
        if let Ok(program) = std::env::var(LINKER_ENV) {
            return Linker::Driver {
                program,
                lld_dir: None,
            };
        }
        // `<sysroot>/lib/rustlib/<host>/bin/gcc-ld/ld.lld` wraps `<...>/bin/rust-lld`.
        let rust_lld = lld_dir
            .and_then(Path::parent)
            .map(|bin| bin.join(format!("rust-lld{}", std::env::consts::EXE_SUFFIX)))
            .filter(|path| path.exists());
        match rust_lld {
            Some(path) => Linker::Lld(path),
            None => Linker::Driver {
                program: "cc".to_owned(),
                lld_dir: lld_dir.map(Path::to_path_buf),
            },
        }
    }

    /// The objects to redirect and link, with what their symbols say.
    /// Redirection works inside an object: when one object reaches a redirect target another
    /// defines, the objects are merged into `work_dir/patch.merged.o`, so a private static one
    /// codegen unit defines and another reaches is reached inside one.
    pub fn merge_for_redirection(
        &self,
        objects: Vec<PathBuf>,
        targets: &HostLocalData,
        work_dir: &Path,
    ) -> anyhow::Result<(Vec<PathBuf>, ObjectSymbols)> {
        let symbols = object_symbols(&objects)?;
        if !reaches_across_objects(&symbols.undefined, targets) {
            return Ok((objects, symbols));
        }
        let merged = work_dir.join("patch.merged.o");
        self.merge(&objects, &merged)?;
        Ok((vec![merged], symbols))
    }

    /// Merges the objects of one crate's codegen units into `output` (a relocatable link), so
    /// every reference between them is one inside an object: a private static one unit defines
    /// and another reads is then seen, and redirected, like any other.
    fn merge(&self, objects: &[PathBuf], output: &Path) -> anyhow::Result<()> {
        let mut command = self.command();
        if matches!(self, Linker::Driver { .. }) {
            command.arg("-nostdlib");
        }
        command.arg("-r").arg("-o").arg(output).args(objects);
        self.run(command, "merging the crate's objects")
    }

    /// Links `objects` into a shared library whose calls bind to its own new functions
    /// (`-Bsymbolic-functions`) while every data reference and every other symbol stays open, to
    /// be resolved against the running host when it is loaded.
    ///
    /// The library exports only the data a crate shares (`shared_data`: the host's
    /// copies of it take precedence) and its hot functions' code (so `dladdr` names a thread
    /// found running it), and keeps only what its registrations, those and the code they reach
    /// need (`--gc-sections`): a rebuilt crate is mostly code no patched function reaches (the
    /// app's startup, its unpatched callers), and exported functions would all be kept.
    /// Registrations are `.init_array` entries, which the linker always keeps; the functions whose
    /// entries the patch redirects (`keep`, normalised mangled names) are marked to be kept.
    ///
    /// With `needs_c_runtime` (the code
    /// refers to `__dso_handle`), the compiler driver links, as only it knows where the C
    /// runtime's start files are. With `writable_data`, relocated read-only data stays writable
    /// (no RELRO): the runtime sets pointers in it after loading.
    pub fn link_library(
        &self,
        objects: &[PathBuf],
        shared_data: &BTreeSet<String>,
        keep: &BTreeSet<String>,
        output: &Path,
        needs_c_runtime: bool,
        writable_data: bool,
    ) -> anyhow::Result<()> {
        let linker = match self {
            Linker::Lld(path) if needs_c_runtime => Linker::Driver {
                program: "cc".to_owned(),
                lld_dir: path.parent().map(|bin| bin.join("gcc-ld")),
            },
            other => other.clone(),
        };
        let relro = if writable_data { "norelro" } else { "relro" };
        let exports = output.with_extension("exports");
        write_version_script(shared_data, &exports)?;
        let mut command = linker.command();
        match &linker {
            Linker::Lld(_) => command.args([
                "-shared",
                "--eh-frame-hdr",
                "--hash-style=gnu",
                "--build-id",
                "-z",
                relro,
                "-Bsymbolic-functions",
                "--gc-sections",
            ]),
            Linker::Driver { .. } => command.args([
                "-shared",
                "-Wl,-Bsymbolic-functions",
                "-Wl,--gc-sections",
                &format!("-Wl,-z,{relro}"),
            ]),
        };
        let version_script = format!("--version-script={}", exports.display());
        match &linker {
            Linker::Lld(_) => command.arg(version_script),
            Linker::Driver { .. } => command.arg(format!("-Wl,{version_script}")),
        };
        retain_functions(objects, keep)?;
        command.arg("-o").arg(output).args(objects);
        linker.run(command, "linking the patch")
    }

    fn command(&self) -> Command {
        match self {
            Linker::Lld(path) => {
                let mut command = Command::new(path);
                command.args(["-flavor", "gnu"]);
                command
            }
            Linker::Driver { program, lld_dir } => {
                let mut command = Command::new(program);
                if let Some(dir) = lld_dir {
                    command
                        .arg(format!("-B{}", dir.display()))
                        .arg("-fuse-ld=lld");
                }
                command
            }
        }
    }

    fn run(&self, mut command: Command, what: &str) -> anyhow::Result<()> {
        let program = command.get_program().to_string_lossy().into_owned();
        let result = command
            .output()
            .with_context(|| format!("{what}: running the linker `{program}`"))?;
        if !result.status.success() {
            bail!(
                "{what} failed (`{program}`):\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        Ok(())
    }
}

/// The pattern of the symbols of hot functions' code (and of closures inside it), as
/// `#[hot]` names it.
const HOT_CODE_PATTERN: &str = "*__hot_original_*";

/// Whether the symbol `name` is hot functions' code, which every patch library exports.
pub fn exports_hot_code(name: &str) -> bool {
    name.contains(HOT_CODE_PATTERN.trim_matches('*'))
}

/// Writes a version script that exports `symbols` (each quoted: matched as written, never as a
/// pattern) and hot functions' code, and makes every other symbol local.
fn write_version_script(symbols: &BTreeSet<String>, path: &Path) -> anyhow::Result<()> {
    let mut script = format!("{{\n  global:\n    {HOT_CODE_PATTERN};\n");
    for symbol in symbols {
        script.push_str(&format!("    \"{symbol}\";\n"));
    }
    script.push_str("  local: *;\n};\n");
    std::fs::write(path, script).with_context(|| format!("writing {}", path.display()))
}

/// Marks the sections of `functions` (normalised mangled names; rustc gives each function a
/// section `.text.NAME`) in `objects` to be kept through `--gc-sections` (`SHF_GNU_RETAIN`): a
/// redirected function may be local, which no export or `--undefined` can keep.
fn retain_functions(objects: &[PathBuf], functions: &BTreeSet<String>) -> anyhow::Result<()> {
    if functions.is_empty() {
        return Ok(());
    }
    for path in objects {
        let mut bytes =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let elf = Elf::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        let mut retained = false;
        for section in &elf.sections {
            let function = section.name.strip_prefix(".text.").map(normalise);
            if function.is_some_and(|name| functions.contains(&name)) {
                retain_section(&mut bytes, section);
                retained = true;
            }
        }
        if retained {
            // A new file, not a write through rustc's hard link into its incremental cache.
            let rewritten = path.with_extension("retained");
            std::fs::write(&rewritten, bytes)
                .with_context(|| format!("writing {}", rewritten.display()))?;
            std::fs::rename(&rewritten, path)
                .with_context(|| format!("replacing {}", path.display()))?;
        }
    }
    Ok(())
}

/// A copy of the patch library without its debug information and symbol table, written by
/// binutils' `objcopy --strip-all` (there wherever `cc` is) while the checks read the linked
/// library; the rest (the dynamic symbols `dladdr` reads included) is unchanged, so offsets read
/// from the linked library hold in the copy. Most of a dev library is debug information and
/// symbol names, which a running process has no use for (its library's descriptor is closed once
/// loaded, so no debugger or profiler could read them from there) and would keep mapped: the
/// linked library in the work directory has them, for `gdb`'s `add-symbol-file`.
pub struct StrippedCopy {
    objcopy: Option<Child>,
    library: PathBuf,
}

impl StrippedCopy {
    /// Starts copying `library` to `output` without its debug information.
    pub fn start(library: &Path, output: &Path) -> anyhow::Result<Self> {
        let objcopy = Command::new("objcopy")
            .arg("--strip-all")
            .arg(library)
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(
                "removing the patch library's debug information: running `objcopy` failed; \
                 install binutils (it comes with gcc) so that `objcopy` is on the PATH",
            )?;
        Ok(StrippedCopy {
            objcopy: Some(objcopy),
            library: library.to_owned(),
        })
    }

    /// Waits for the copy to be written.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let objcopy = self.objcopy.take().expect("an objcopy is waited for once");
        let result = objcopy
            .wait_with_output()
            .context("waiting for `objcopy` to remove the patch library's debug information")?;
        if !result.status.success() {
            bail!(
                "removing the patch library's debug information failed \
                 (`objcopy --strip-all {}`):\n{}",
                self.library.display(),
                String::from_utf8_lossy(&result.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for StrippedCopy {
    /// A build that stops before packaging still reaps its `objcopy` (a watching tool lives on).
    fn drop(&mut self) {
        if let Some(mut objcopy) = self.objcopy.take() {
            let _ = objcopy.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchain_lld_is_found_next_to_its_gcc_ld_directory() {
        let dir = tempfile::tempdir().unwrap();
        let gcc_ld = dir.path().join("bin/gcc-ld");
        std::fs::create_dir_all(&gcc_ld).unwrap();
        assert!(matches!(
            Linker::for_base(Some(&gcc_ld)),
            Linker::Driver { program, lld_dir: Some(_) } if program == "cc"
        ));
        std::fs::write(dir.path().join("bin/rust-lld"), b"").unwrap();
        if std::env::var_os(LINKER_ENV).is_none() {
            assert!(
                matches!(Linker::for_base(Some(&gcc_ld)), Linker::Lld(path) if path.ends_with("bin/rust-lld"))
            );
        }
        assert!(matches!(
            Linker::for_base(None),
            Linker::Driver { lld_dir: None, .. }
        ));
    }
}

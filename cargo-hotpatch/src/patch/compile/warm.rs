//! Compilers started ahead of the next save.
//!
//! Starting rustc costs about 11 ms before it reads its arguments (the dynamic loader relocating
//! `librustc_driver`), a tenth of a patch's compile. `watch` keeps a rustc waiting for each crate
//! it is likely to patch next: started with the crate's captured environment and working
//! directory, blocked reading an argument file that is a named pipe. A save writes the arguments
//! into the pipe and the compile starts at once. A waiting rustc that is gone, or a platform
//! without named pipes, means a cold start: never a failed patch.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::host::CrateRecord;

/// How many crates keep a rustc waiting: each one is an idle process of about 30 MB.
pub const MAX_WAITING: usize = 4;

/// The waiting compilers of one watch session, most recently used last.
#[derive(Debug)]
pub struct WarmCompilers {
    dir: PathBuf,
    waiting: VecDeque<WarmRustc>,
}

impl WarmCompilers {
    /// Compilers whose argument pipes live in `dir`.
    pub fn new(dir: &Path) -> Self {
        WarmCompilers {
            dir: dir.to_path_buf(),
            waiting: VecDeque::new(),
        }
    }

    /// Starts a rustc for the next compile of `record`, unless one is waiting; the least recently
    /// prepared crate's stops beyond [`MAX_WAITING`].
    pub fn prepare(&mut self, record: &CrateRecord) {
        if let Some(at) = self.position(&record.name) {
            let ready = self.waiting.remove(at).expect("position is in range");
            self.waiting.push_back(ready);
            return;
        }
        if let Some(ready) = WarmRustc::start(record, &self.dir) {
            self.waiting.push_back(ready);
        }
        while self.waiting.len() > MAX_WAITING {
            self.waiting.pop_front();
        }
    }

    /// The rustc waiting for `crate_name`, if it is still there.
    pub fn take(&mut self, crate_name: &str) -> Option<WarmRustc> {
        let at = self.position(crate_name)?;
        let mut ready = self.waiting.remove(at)?;
        let waiting = ready
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        waiting.then_some(ready)
    }

    /// Stops every waiting rustc (the base they were started for is gone).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }

    fn position(&self, crate_name: &str) -> Option<usize> {
        self.waiting.iter().position(|w| w.crate_name == crate_name)
    }
}

/// A rustc started with a crate's environment, waiting for its arguments.
#[derive(Debug)]
pub struct WarmRustc {
    crate_name: String,
    /// Until [`WarmRustc::run`] hands it over.
    child: Option<Child>,
    arguments: PathBuf,
}

impl WarmRustc {
    #[cfg(target_os = "linux")]
    fn start(record: &CrateRecord, dir: &Path) -> Option<Self> {
        use std::os::unix::process::CommandExt as _;

        std::fs::create_dir_all(dir).ok()?;
        let arguments = dir.join(format!("{}.rustc-args", record.name));
        let _ = std::fs::remove_file(&arguments);
        let path = std::ffi::CString::new(arguments.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
            return None;
        }
        let invocation = &record.invocation;
        let mut command = std::process::Command::new(&invocation.rustc);
        command
            .arg(format!("@{}", arguments.display()))
            .env_clear()
            .envs(&invocation.env)
            .current_dir(&invocation.cwd)
            // Read by the build it compiles, as a cold rustc's is.
            .stderr(std::process::Stdio::piped());
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` is async-signal-safe and touches no memory of the
        // parent; it runs in the child between fork and exec. A tool killed outright must not
        // leave compilers waiting forever on their pipes.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().ok()?;
        Some(WarmRustc {
            crate_name: record.name.clone(),
            child: Some(child),
            arguments,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn start(_record: &CrateRecord, _dir: &Path) -> Option<Self> {
        None
    }

    /// Hands `args` to the waiting rustc; returns it, compiling. `None` if it could not take
    /// them (it is gone): compile with a fresh rustc instead.
    #[cfg(target_os = "linux")]
    pub fn run(mut self, args: &[String]) -> Option<Child> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        // Non-blocking, so a rustc that died before opening the pipe fails the open instead of
        // hanging it; writes to the open pipe block as usual.
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.arguments)
        };
        // Just started, it may not have opened the pipe yet (the open fails with ENXIO).
        let mut attempts = 0;
        let mut pipe = loop {
            match open() {
                Ok(pipe) => break pipe,
                Err(error) if error.raw_os_error() == Some(libc::ENXIO) && attempts < 50 => {
                    let child = self.child.as_mut()?;
                    if !matches!(child.try_wait(), Ok(None)) {
                        return None;
                    }
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(_) => return None,
            }
        };
        // SAFETY: `fcntl` on a descriptor this function owns, clearing `O_NONBLOCK`.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&pipe);
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        // One argument per line: rustc's argument file format.
        let mut text = args.join("\n");
        text.push('\n');
        pipe.write_all(text.as_bytes()).ok()?;
        drop(pipe);
        self.child.take()
    }

    #[cfg(not(target_os = "linux"))]
    pub fn run(self, _args: &[String]) -> Option<Child> {
        None
    }
}

impl Drop for WarmRustc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.arguments);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::host::capture::Invocation;

    /// A crate whose "compiler" is a shell printing its argument file into `out`.
    fn record(name: &str, dir: &Path) -> CrateRecord {
        let script = dir.join("fake-rustc");
        std::fs::write(&script, "#!/bin/sh\nexec cat \"${1#@}\" > \"$OUT\"\n").unwrap();
        let mut permissions = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).unwrap();
        CrateRecord {
            name: name.to_owned(),
            crate_types: vec!["lib".to_owned()],
            invocation: Invocation {
                rustc: script,
                args: Vec::new(),
                cwd: dir.to_path_buf(),
                env: [(
                    "OUT".to_owned(),
                    dir.join(format!("{name}.out")).display().to_string(),
                )]
                .into(),
            },
            features: Vec::new(),
            sources: Default::default(),
        }
    }

    #[test]
    fn a_waiting_compiler_gets_its_arguments_through_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let mut warm = WarmCompilers::new(&dir.path().join("warm"));
        let logic = record("logic", dir.path());
        warm.prepare(&logic);
        let ready = warm.take("logic").expect("a compiler waits for `logic`");
        assert!(warm.take("logic").is_none(), "taken once");
        let mut child = ready
            .run(&["--crate-name".to_owned(), "logic".to_owned()])
            .expect("it takes the arguments");
        assert!(child.wait().unwrap().success());
        let got = std::fs::read_to_string(dir.path().join("logic.out")).unwrap();
        assert_eq!(got, "--crate-name\nlogic\n");
    }

    #[test]
    fn a_compiler_that_is_gone_is_not_handed_out_and_the_oldest_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut warm = WarmCompilers::new(&dir.path().join("warm"));
        let records: Vec<CrateRecord> = (0..=MAX_WAITING)
            .map(|i| record(&format!("c{i}"), dir.path()))
            .collect();
        for record in &records {
            warm.prepare(record);
        }
        assert!(warm.take("c0").is_none(), "the least recent made room");
        let mut last = warm.take(&records[MAX_WAITING].name).unwrap();
        last.child.as_mut().unwrap().kill().unwrap();
        last.child.as_mut().unwrap().wait().unwrap();
        warm.waiting.push_back(last);
        assert!(warm.take(&records[MAX_WAITING].name).is_none());
        warm.clear();
        assert!(
            std::fs::read_dir(dir.path().join("warm"))
                .unwrap()
                .next()
                .is_none(),
            "stopping them removes their pipes"
        );
    }
}

//! A virtual X display for the game example's tests: `Xvfb` on a free display number, with
//! Mesa's software OpenGL (llvmpipe) for the apps drawn on it. `.ci/run` installs both.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Xvfb may take to open its display.
const STARTS_WITHIN: Duration = Duration::from_secs(10);

/// A running `Xvfb`; stopped when dropped.
pub struct VirtualDisplay {
    server: Child,
    name: String,
}

impl VirtualDisplay {
    /// Starts `Xvfb` on the first free display from `:90`.
    pub fn start() -> Self {
        let number = (90..190)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number between :90 and :189");
        let name = format!(":{number}");
        let server = Command::new("Xvfb")
            .args([&name, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting Xvfb: {error}; install the packages .ci/run installs (xvfb, Mesa's libgl1-mesa-dri)")
            });
        let mut display = VirtualDisplay { server, name };
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + STARTS_WITHIN;
        while !Path::new(&socket).exists() {
            if let Ok(Some(exit)) = display.server.try_wait() {
                panic!("Xvfb {} exited at start ({exit})", display.name);
            }
            assert!(
                Instant::now() < deadline,
                "Xvfb did not open display {} within {STARTS_WITHIN:?}",
                display.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        display
    }

    /// The display's name, for `DISPLAY`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

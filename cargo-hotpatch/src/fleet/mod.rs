//! The fleet: processes on many hosts brought to one patch through etcd. `publish` stores a
//! patch and moves a build's desired state batch by batch; an `agent` on each host brings the
//! processes it serves to that state through their control sockets and reports them under a
//! lease. etcd is trusted with nothing but coordination: the agent checks a blob's hash, and
//! each process checks the patch's hash, signature and build before loading it.

pub mod agent;
mod blobs;
mod converge;
mod etcd;
mod keys;
pub mod publish;
pub mod rollout;

/// This machine's host name (`localhost` if it cannot be read).
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: `buffer` is writable for its whole length, which is what is passed.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "localhost".to_owned();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

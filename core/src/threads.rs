//! Threads inside a Postgres process must never run its signal handlers: those call into
//! Postgres, which only the main thread may do (pgrx aborts the process if another thread
//! does). Linux hands a process-directed signal (SIGTERM, SIGINT, SIGUSR1) to any thread that
//! does not block it, so every thread docchat starts, and every ONNX Runtime thread pool,
//! begins with all signals blocked: a new thread inherits the mask of the thread that made it.
use std::io;
use std::thread::{Builder, JoinHandle};

/// Runs `f` with every signal blocked on this thread, then restores the mask (signals that
/// arrived meanwhile are delivered then).
pub fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain libc calls on sigset_t values owned here.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let out = f();
    // SAFETY: as above; `old` is the mask read before.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    out
}

/// `builder.spawn(f)` for a thread that blocks every signal from its first instruction.
pub fn spawn<F, T>(builder: Builder, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_signals_blocked(|| builder.spawn(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(sig: i32) -> bool {
        // SAFETY: reads this thread's mask into a local set.
        unsafe {
            let mut now: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
            libc::sigismember(&now, sig) == 1
        }
    }

    #[test]
    fn spawned_threads_and_their_children_block_signals_and_the_caller_keeps_its_mask() {
        assert!(!blocked(libc::SIGTERM));
        let child = spawn(Builder::new(), || {
            let grandchild = std::thread::spawn(|| blocked(libc::SIGTERM) && blocked(libc::SIGINT) && blocked(libc::SIGUSR1));
            (blocked(libc::SIGTERM), grandchild.join().unwrap())
        })
        .unwrap();
        assert_eq!(child.join().unwrap(), (true, true));
        assert!(!blocked(libc::SIGTERM), "the caller's mask is put back");
        assert!(with_signals_blocked(|| blocked(libc::SIGHUP)));
        assert!(!blocked(libc::SIGHUP));
    }
}

//! A stop handle: Ctrl+C (or a test) asks a server to end, and every loop
//! that may be blocked gets woken.
//!
//! Blocking calls do not look at flags, so a stop also runs the hooks that
//! loops registered: a `mio::Waker` for a poll loop, a socket `shutdown` for
//! a thread blocked in `read`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn Fn() + Send + Sync>;

/// Cloneable handle; all clones share one state.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    hooks: Mutex<Vec<Hook>>,
}

impl Stop {
    /// A handle that has not been stopped.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks everything to stop; runs each hook once. Returns `false` when
    /// it had already been stopped (a second Ctrl+C).
    pub fn stop(&self) -> bool {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return false;
        }
        let hooks = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for hook in hooks.iter() {
            hook();
        }
        true
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Runs `hook` when the stop comes (at once if it already came).
    pub fn on_stop(&self, hook: impl Fn() + Send + Sync + 'static) {
        let mut hooks = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.is_stopped() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_late_hooks_run_at_once() {
        let stop = Stop::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n1 = n.clone();
        stop.on_stop(move || {
            n1.fetch_add(1, Ordering::SeqCst);
        });
        assert!(stop.stop());
        assert!(!stop.stop());
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let n2 = n.clone();
        stop.clone().on_stop(move || {
            n2.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
    }
}

//! Helper threads that cannot take the process down when memory is short.
//!
//! This library is loaded with `dlopen`, so glibc gives a new thread its block of the library's
//! thread-local storage lazily, with `malloc`, on the thread's first access to it, and if that
//! allocation fails glibc ends the whole process ("cannot allocate memory for thread-local data:
//! ABORT", exit 127). `pthread_create` itself can succeed under an address-space limit (it
//! reuses a cached stack), and a thread started by `std::thread` touches the library's
//! thread-local storage at once (to record its handle). So the helpers here are started with
//! `pthread_create` directly and run only code that touches none of it: atomics, raw memory and
//! `nanosleep`. Nothing in a helper may use `std::thread::current`, thread-locals, Python or
//! locks that report poisoning through them. If the OS refuses a thread, the work comes back to
//! the caller, which does it itself.
//!
//! This is the only module that starts threads (`clippy.toml` forbids `std::thread::spawn`,
//! `scope` and `Builder` elsewhere); work that borrows the caller's data runs through
//! [`run_all`] or [`join`], which wait for their helpers before returning.

// The one place allowed to start threads (see `clippy.toml`).
#![allow(clippy::disallowed_methods)]

/// Work for a helper thread.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// Stack of a helper thread: the work is loops over buffers allocated by the caller.
#[cfg(unix)]
const STACK_SIZE: usize = 256 << 10;

#[cfg(unix)]
mod imp {
    use super::{Task, STACK_SIZE};
    use std::ffi::c_void;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::ptr;

    pub struct Raw {
        tid: libc::pthread_t,
        pid: u32,
    }

    extern "C" fn run(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `arg` is the `Box<Task>` leaked by `start`, taken back exactly once here.
        let task = unsafe { Box::from_raw(arg.cast::<Task>()) };
        // A panic is a bug; it must not unwind into C. The caller sees the missing result.
        let _ = catch_unwind(AssertUnwindSafe(task));
        ptr::null_mut()
    }

    /// Starts `task` on a new thread, or gives it back if the OS refuses one.
    pub fn start(task: Task) -> Result<Raw, Task> {
        let arg = Box::into_raw(Box::new(task));
        // SAFETY: plain pthread calls on a local attribute object; on success the thread owns
        // `arg` (see `run`), on failure it is taken back here.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) != 0 {
                return Err(*Box::from_raw(arg));
            }
            let _ = libc::pthread_attr_setstacksize(&mut attr, STACK_SIZE);
            let mut tid: libc::pthread_t = std::mem::zeroed();
            let rc = libc::pthread_create(&mut tid, &attr, run, arg.cast());
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 {
                return Err(*Box::from_raw(arg));
            }
            Ok(Raw {
                tid,
                pid: std::process::id(),
            })
        }
    }

    impl Raw {
        /// Waits for the thread to end; `false` if it belongs to another process (the parent
        /// of a fork), where it cannot be waited for.
        pub fn join(self) -> bool {
            let this = std::mem::ManuallyDrop::new(self);
            if this.pid != std::process::id() {
                return false;
            }
            // SAFETY: a joinable thread of this process, joined once (`self` is consumed).
            unsafe { libc::pthread_join(this.tid, ptr::null_mut()) == 0 }
        }
    }

    #[cfg(test)]
    impl Raw {
        pub fn pretend_forked(&mut self) {
            // The thread is then never joined nor detached: a test-only leak.
            self.pid = self.pid.wrapping_add(1);
        }
    }

    impl Drop for Raw {
        fn drop(&mut self) {
            if self.pid == std::process::id() {
                // SAFETY: a joinable thread of this process, never joined: let it go.
                unsafe { libc::pthread_detach(self.tid) };
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::Task;

    pub struct Raw(std::thread::JoinHandle<()>);

    pub fn start(task: Task) -> Result<Raw, Task> {
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(task)));
        let theirs = std::sync::Arc::clone(&slot);
        let spawned = std::thread::Builder::new().spawn(move || {
            let task = theirs.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                task();
            }
        });
        match spawned {
            Ok(h) => Ok(Raw(h)),
            Err(_) => {
                let task = slot.lock().ok().and_then(|mut t| t.take());
                Err(task.expect("the task of a thread that never started"))
            }
        }
    }

    impl Raw {
        pub fn join(self) -> bool {
            self.0.join().is_ok()
        }
    }
}

use std::cell::UnsafeCell;
use std::sync::Arc;

/// Starts `task` on a detached helper thread, or gives it back if no thread could be started.
pub fn spawn_detached(task: Task) -> Result<(), Task> {
    imp::start(task).map(drop)
}

/// Where a helper leaves its result: written once by the helper, read after joining it.
struct Slot<T>(UnsafeCell<Option<T>>);

// SAFETY: the helper writes before it ends; the owner reads only after joining it, which
// orders the write before the read.
unsafe impl<T: Send> Sync for Slot<T> {}

/// A helper thread computing a `T`. Dropping it lets the thread finish on its own.
pub struct Handle<T> {
    raw: imp::Raw,
    slot: Arc<Slot<T>>,
}

impl<T: Send + 'static> Handle<T> {
    /// The result, or `None` if the work panicked or the thread belongs to the parent of a
    /// fork (it did not come along).
    pub fn join(self) -> Option<T> {
        if !self.raw.join() {
            return None;
        }
        // SAFETY: joined, so the helper has finished with the slot.
        unsafe { (*self.slot.0.get()).take() }
    }
}

#[cfg(all(test, unix))]
impl<T> Handle<T> {
    /// Makes the handle look as if this process were a fork of the thread's.
    pub fn pretend_forked(&mut self) {
        self.raw.pretend_forked();
    }
}

/// The CPUs this process may run on (its affinity mask on Linux), at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// Starts `f` on a helper thread whose result [`Handle::join`] returns; gives `f` back if no
/// thread could be started.
pub fn spawn<T, F>(f: F) -> Result<Handle<T>, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Slot(UnsafeCell::new(None)));
    let theirs = Arc::clone(&slot);
    // The closure is kept in a shared cell so that it can be handed back if the thread is
    // refused (the task box is consumed by `start` either way).
    let work = Arc::new(Slot(UnsafeCell::new(Some(f))));
    let ours = Arc::clone(&work);
    let task: Task = Box::new(move || {
        // SAFETY: the thread started, so only it takes the closure (the caller does so only
        // when the thread was refused, see below).
        if let Some(f) = unsafe { (*work.0.get()).take() } {
            let v = f();
            // SAFETY: the only write, read after the join.
            unsafe { *theirs.0.get() = Some(v) };
        }
    });
    match imp::start(task) {
        Ok(raw) => Ok(Handle { raw, slot }),
        Err(task) => {
            drop(task);
            // SAFETY: no thread runs the task, and it was dropped: the cell is ours alone.
            let f = unsafe { (*ours.0.get()).take() };
            Err(f.expect("a refused task keeps its closure"))
        }
    }
}

/// Runs every task, on helper threads where the OS grants them and on the calling thread
/// otherwise, and returns when all are done. Panics (after all are done) if a helper panicked.
pub fn run_all<'a>(tasks: Vec<Box<dyn FnOnce() + Send + 'a>>) {
    /// Joins the helpers even if the caller's own share of the work unwinds.
    struct JoinAll(Vec<Handle<()>>, bool);
    impl Drop for JoinAll {
        fn drop(&mut self) {
            for h in self.0.drain(..) {
                self.1 &= h.join().is_some();
            }
        }
    }
    let mut tasks = tasks.into_iter();
    let Some(first) = tasks.next() else { return };
    let mut helpers = JoinAll(Vec::new(), true);
    let mut here: Vec<Box<dyn FnOnce() + Send + 'a>> = Vec::new();
    for task in tasks {
        // SAFETY: every helper started here is joined before this function returns (by
        // `helpers`, also when unwinding), so what the task borrows outlives the thread.
        let task: Task = unsafe { std::mem::transmute(task) };
        match spawn(task) {
            Ok(h) => helpers.0.push(h),
            Err(task) => here.push(task),
        }
    }
    first();
    for task in here {
        task();
    }
    helpers
        .0
        .drain(..)
        .for_each(|h| helpers.1 &= h.join().is_some());
    assert!(helpers.1, "a helper thread panicked");
}

/// Runs `helper` on a helper thread while the calling thread runs `here`, and returns both
/// results once both are done (`helper` runs on the calling thread, after `here`, if the OS
/// refuses a thread). Both may borrow the caller's data. Panics, after both are done, if
/// `helper` panicked.
pub fn join<'a, A, B>(helper: impl FnOnce() -> A + Send + 'a, here: impl FnOnce() -> B) -> (A, B)
where
    A: Send + 'static,
{
    /// Joins the helper even if `here` unwinds, so that nothing it borrows is freed under it.
    struct Joined<A: Send + 'static>(Option<Handle<A>>);
    impl<A: Send + 'static> Drop for Joined<A> {
        fn drop(&mut self) {
            if let Some(h) = self.0.take() {
                let _ = h.join();
            }
        }
    }
    let work: Box<dyn FnOnce() -> A + Send + 'a> = Box::new(helper);
    // SAFETY: the helper started here is joined before this function returns (by `Joined`,
    // also when unwinding), so what the work borrows outlives the thread.
    let work: Box<dyn FnOnce() -> A + Send + 'static> = unsafe { std::mem::transmute(work) };
    match spawn(work) {
        Ok(handle) => {
            let mut joined = Joined(Some(handle));
            let b = here();
            let a = joined.0.take().and_then(Handle::join);
            (a.expect("a helper thread panicked"), b)
        }
        Err(work) => {
            let b = here();
            (work(), b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn spawn_returns_the_result() {
        let h = spawn(|| (0..1000u64).sum::<u64>()).ok().unwrap();
        assert_eq!(h.join(), Some(499_500));
    }

    #[test]
    fn detached_and_dropped_handles_finish() {
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let d = Arc::clone(&done);
            spawn_detached(Box::new(move || {
                d.fetch_add(1, Ordering::SeqCst);
            }))
            .ok()
            .unwrap();
            let d = Arc::clone(&done);
            drop(
                spawn(move || d.fetch_add(1, Ordering::SeqCst))
                    .ok()
                    .unwrap(),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::SeqCst) < 100 {
            assert!(
                Instant::now() < deadline,
                "only {} of 100 helpers finished within 60 s",
                done.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn join_runs_both_on_borrowed_data() {
        let data: Vec<u64> = (0..10_000).collect();
        let mut mine = [0u64; 3];
        let (theirs, here) = join(
            || data.iter().sum::<u64>(),
            || {
                mine[1] = data[..100].iter().sum();
                7
            },
        );
        assert_eq!((theirs, here, mine[1]), (49_995_000, 7, 4950));
    }

    #[test]
    fn run_all_runs_every_task_on_borrowed_data() {
        let mut out = vec![0u64; 10_000];
        let tasks: Vec<Box<dyn FnOnce() + Send + '_>> = out
            .chunks_mut(1000)
            .enumerate()
            .map(|(c, piece)| {
                Box::new(move || {
                    for (k, v) in piece.iter_mut().enumerate() {
                        *v = (c * 1000 + k) as u64;
                    }
                }) as Box<dyn FnOnce() + Send + '_>
            })
            .collect();
        run_all(tasks);
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as u64));
        run_all(Vec::new());
    }
}

//! Log lines to stdout in batches: one `write(2)` every few milliseconds instead of one per line.
//!
//! Why by hand: on the gateway's hot path the access log is one line per request, and a system
//! call per line was the largest single cost the load harness measured (bench/README.md).
//! `tracing-appender`'s non-blocking writer moves the write to another thread but still issues
//! one write per line and adds a cross-thread wake-up per line; here lines are appended to a
//! shared buffer under a short lock and a flusher thread writes the whole buffer at once.
//!
//! Nothing is ever dropped: when stdout cannot keep up and the buffer reaches [`HIGH_WATER`],
//! the thread appending a line writes the buffer itself (back-pressure, as an unbuffered writer
//! would have). What a hard kill (SIGKILL) can lose is the last [`FLUSH_EVERY`] of lines; every
//! orderly exit, and a panic, flushes (see [`BatchedStdout::flush`] and `telemetry::init`).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// How often an idle flusher checks whether every handle is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// A buffer this large is written at once instead of waiting for the flusher's next tick.
const WAKE_AT: usize = 64 * 1024;
/// A buffer this large means stdout is slow: the appending thread writes it itself.
pub const HIGH_WATER: usize = 1024 * 1024;

/// A cloneable handle on the shared buffer; see the module documentation.
#[derive(Clone)]
pub struct BatchedStdout {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Wakes the flusher early (a large buffer).
    wake: Condvar,
    /// Serialises writes to stdout so batches keep their order.
    out: Mutex<Box<dyn Write + Send>>,
}

impl BatchedStdout {
    /// Starts the flusher thread, writing to the process's stdout.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Box::new(io::stdout()))
    }

    /// The same over any writer (tests).
    pub fn start_with(out: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(WAKE_AT)),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let flusher = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || {
                // Ends when the last handle is gone (the drop of `Shared` writes what is left).
                while let Some(shared) = flusher.upgrade() {
                    let pending = lock(&shared.pending);
                    // Idle: sleep until a line arrives (re-checking now and then whether the
                    // handles are all gone).
                    let (pending, _) = shared
                        .wake
                        .wait_timeout_while(pending, IDLE_CHECK, |p| p.is_empty())
                        .unwrap_or_else(PoisonError::into_inner);
                    if pending.is_empty() {
                        continue;
                    }
                    // A line is waiting: give the lines that follow it FLUSH_EVERY to join it.
                    let (pending, _) = shared
                        .wake
                        .wait_timeout_while(pending, FLUSH_EVERY, |p| p.len() < WAKE_AT)
                        .unwrap_or_else(PoisonError::into_inner);
                    shared.write_out(pending);
                }
            })?;
        Ok(Self { shared })
    }

    /// Appends whole lines (the caller ends each with `\n`).
    pub fn append(&self, lines: &[u8]) {
        let mut pending = lock(&self.shared.pending);
        let was_empty = pending.is_empty();
        pending.extend_from_slice(lines);
        if pending.len() >= HIGH_WATER {
            self.shared.write_out(pending);
        } else if was_empty || pending.len() >= WAKE_AT {
            // One wake-up per batch, not per line: under load the buffer is rarely empty.
            self.shared.wake.notify_one();
        }
    }

    /// Writes everything buffered so far and flushes stdout.
    pub fn flush(&self) {
        self.shared.write_out(lock(&self.shared.pending));
    }

    /// [`flush`](Self::flush) unless a lock is held, by this thread or another (the panic hook:
    /// a panic while appending must not deadlock on the buffer's own lock).
    pub fn try_flush(&self) {
        if let Ok(mut pending) = self.shared.pending.try_lock()
            && let Ok(mut out) = self.shared.out.try_lock()
        {
            let batch = std::mem::take(&mut *pending);
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }
}

impl std::fmt::Debug for BatchedStdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedStdout").finish_non_exhaustive()
    }
}

impl Shared {
    /// Takes the buffered lines (releasing `pending` before the system call, so appenders
    /// are not held up by it) and writes them in order.
    fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>) {
        // The output lock is taken before `pending` is released: two batches cannot overtake
        // each other on their way to stdout.
        let mut out = lock(&self.out);
        let batch = std::mem::replace(&mut *pending, Vec::with_capacity(WAKE_AT));
        drop(pending);
        if batch.is_empty() {
            return;
        }
        // A log that cannot be written has nowhere to report that; stderr is the last resort.
        if let Err(e) = out.write_all(&batch).and_then(|()| out.flush()) {
            eprintln!("portcullis: cannot write the log to stdout: {e}");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let batch = std::mem::take(
            self.pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let out = self.out.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(&batch).and_then(|()| out.flush());
    }
}

/// A poisoned lock only means another thread panicked while logging; the buffer is still bytes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer `tracing-subscriber`'s formatter gets for one event: it collects the formatted
/// line and appends it as a whole when dropped, so lines from different threads never mix.
pub struct LineWriter {
    sink: BatchedStdout,
    line: Vec<u8>,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter").finish_non_exhaustive()
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.sink.append(&self.line);
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            sink: self.clone(),
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back, counting the writes it was given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut r = lock(&self.0);
            r.0.extend_from_slice(buf);
            r.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes() {
        let rec = Recorder::default();
        let out = BatchedStdout::start_with(Box::new(rec.clone())).unwrap();
        for i in 0..1000 {
            out.append(format!("line {i}\n").as_bytes());
        }
        out.flush();
        let (bytes, writes) = lock(&rec.0).clone();
        let text = String::from_utf8(bytes).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        assert!(writes < 1000, "{writes} writes for 1000 lines");
    }

    #[test]
    fn the_flusher_writes_without_being_asked() {
        let rec = Recorder::default();
        let out = BatchedStdout::start_with(Box::new(rec.clone())).unwrap();
        out.append(b"one\n");
        // Bounded wait: the flusher ticks every FLUSH_EVERY.
        for _ in 0..500 {
            if !lock(&rec.0).0.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(lock(&rec.0).0, b"one\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_appender() {
        let rec = Recorder::default();
        let out = BatchedStdout::start_with(Box::new(rec.clone())).unwrap();
        let big = vec![b'x'; HIGH_WATER];
        out.append(&big);
        // Written synchronously, before any flusher tick could have done it.
        assert_eq!(lock(&rec.0).0.len(), HIGH_WATER);
    }

    #[test]
    fn dropping_the_last_handle_writes_what_is_left() {
        let rec = Recorder::default();
        let out = BatchedStdout::start_with(Box::new(rec.clone())).unwrap();
        let writer_lines: Vec<u8> = b"a\nb\n".to_vec();
        {
            let mut w = out.make_writer();
            w.write_all(&writer_lines).unwrap();
        }
        drop(out);
        // The flusher may hold a strong reference for a moment; wait for the final drop.
        for _ in 0..500 {
            if !lock(&rec.0).0.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(lock(&rec.0).0, writer_lines);
    }
}

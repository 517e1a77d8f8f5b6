//! Backpressure on the embedded log: whether it takes another append now.
//!
//! Owns the gate every append passes before it is queued for the writer ([`super::writer`]):
//! the free space on the log's file system must be above the floor (`[log] min_free`, measured
//! at most every [`SPACE_CHECK_EVERY`], so an append costs no system call), and the records
//! waiting for the writer must stay under their bound (`[log] max_pending`, which also bounds
//! the memory they take). A commit the file system refused for want of space ([`Gate::full`])
//! shows as a full disk until an append succeeds again. A refused append stores nothing and gets
//! [`Error::Backpressure`]; nothing here ever stops the log for good: the next append after the
//! cause is gone goes through. The state changes (refusing, accepting again) are logged once each.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::eventlog::{Error, MinFree, Namespace, Policy, Pressure, Result};

/// How often the free space is measured.
const SPACE_CHECK_EVERY: Duration = Duration::from_millis(200);

/// The gate of one embedded log (see the module doc).
pub(super) struct Gate {
    dir: PathBuf,
    noun: &'static str,
    min_free: MinFree,
    max_pending: usize,
    /// Records sent to the writer and not yet answered.
    pending: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the free space was last measured, and the pressure it showed.
    measured: Option<Instant>,
    low_space: Option<Pressure>,
    /// A commit failed for want of space, and none succeeded since.
    disk_full: bool,
    /// What was last reported, to log changes only.
    reported: Option<Pressure>,
}

/// Records of one append counted as waiting until dropped (answered, failed or cancelled).
pub(super) struct Waiting<'a> {
    gate: &'a Gate,
    records: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gate.pending.fetch_sub(self.records, Ordering::Relaxed);
    }
}

impl Gate {
    pub(super) fn new(dir: PathBuf, namespace: Namespace, policy: &Policy) -> Gate {
        Gate {
            dir,
            noun: namespace.noun(),
            min_free: policy.min_free,
            max_pending: policy.max_pending.max(1),
            pending: AtomicUsize::new(0),
            state: Mutex::default(),
        }
    }

    /// Lets an append of `records` records through, counted as waiting while the returned guard
    /// lives, or refuses it.
    pub(super) fn admit(&self, records: usize) -> Result<Waiting<'_>> {
        let waiting = self.pending.fetch_add(records, Ordering::Relaxed) + records;
        let guard = Waiting { gate: self, records };
        // One append larger than the bound alone still goes through when nothing else waits.
        if waiting > self.max_pending && waiting > records {
            return Err(self.refuse(Pressure::Queue { waiting: waiting - records, bound: self.max_pending }));
        }
        if let Some(pressure) = self.space_pressure() {
            return Err(self.refuse(pressure));
        }
        Ok(guard)
    }

    /// Records that a commit failed because the file system is full.
    pub(super) fn full(&self) -> Error {
        if let Ok(mut state) = self.state.lock() {
            state.disk_full = true;
        }
        self.refuse(Pressure::DiskFull)
    }

    /// Records that an append was stored: a full disk has room again.
    pub(super) fn stored(&self) {
        if let Ok(mut state) = self.state.lock()
            && (state.disk_full || state.reported.is_some())
        {
            state.disk_full = false;
            if state.low_space.is_none() && state.reported.take().is_some() {
                tracing::info!(log = %self.dir.display(), noun = self.noun, "the event log takes records again");
            }
        }
    }

    /// Why appends are refused now, as last seen.
    pub(super) fn pressure(&self) -> Option<Pressure> {
        let state = self.state.lock().ok()?;
        if state.disk_full {
            return Some(Pressure::DiskFull);
        }
        state.low_space.clone()
    }

    /// The free-space pressure, measured again when the last measure is old.
    fn space_pressure(&self) -> Option<Pressure> {
        let mut state = self.state.lock().ok()?;
        if state.measured.is_none_or(|at| at.elapsed() >= SPACE_CHECK_EVERY) {
            state.measured = Some(Instant::now());
            state.low_space = crate::lake::space(&self.dir).and_then(|space| {
                let floor = self.min_free.floor(space.total);
                (space.free < floor).then_some(Pressure::LowSpace { free: space.free, floor })
            });
            if state.low_space.is_none() && !state.disk_full && state.reported.take().is_some() {
                tracing::info!(log = %self.dir.display(), noun = self.noun, "the event log takes records again");
            }
        }
        state.low_space.clone()
    }

    /// The error for a refused append; logs the first refusal of a kind.
    fn refuse(&self, pressure: Pressure) -> Error {
        if let Ok(mut state) = self.state.lock()
            && state.reported.as_ref().map(Pressure::label) != Some(pressure.label())
        {
            tracing::warn!(log = %self.dir.display(), noun = self.noun, reason = %pressure,
                "the event log refuses records until the cause is gone");
            state.reported = Some(pressure.clone());
        }
        Error::Backpressure { noun: self.noun, path: self.dir.display().to_string(), pressure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(min_free: MinFree, max_pending: usize) -> (tempfile::TempDir, Gate) {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy { min_free, max_pending, ..Policy::default_for(Namespace::Topics) };
        let gate = Gate::new(dir.path().to_path_buf(), Namespace::Topics, &policy);
        (dir, gate)
    }

    #[test]
    fn waiting_records_past_the_bound_are_refused_until_some_are_answered() {
        let (_dir, gate) = gate(MinFree::Bytes(0), 10);
        let first = gate.admit(8).unwrap();
        let err = gate.admit(5).err().unwrap();
        assert!(
            matches!(&err, Error::Backpressure { pressure: Pressure::Queue { waiting: 8, bound: 10 }, .. }),
            "{err}"
        );
        drop(first);
        // Alone, even an append over the bound goes through.
        let big = gate.admit(50).unwrap();
        assert!(gate.admit(1).is_err());
        drop(big);
        assert!(gate.admit(1).is_ok());
    }

    #[test]
    fn a_floor_above_the_free_space_refuses_and_names_both() {
        let (_dir, gate) = gate(MinFree::Bytes(u64::MAX), 100);
        let err = gate.admit(1).err().unwrap();
        assert!(matches!(&err, Error::Backpressure { pressure: Pressure::LowSpace { floor: u64::MAX, .. }, .. }));
        assert!(err.to_string().contains("under the floor of 18446744073709551615 (min_free)"), "{err}");
        assert_eq!(gate.pressure().map(|p| p.label()), Some("low_space"));
        assert_eq!(gate.pending.load(Ordering::Relaxed), 0, "a refused append does not wait");
    }

    #[test]
    fn the_default_floor_is_the_smaller_of_1_gib_and_5_percent() {
        assert_eq!(MinFree::Default.floor(100 << 30), 1 << 30);
        assert_eq!(MinFree::Default.floor(10 << 30), (10 << 30) / 20);
        assert_eq!(MinFree::Percent(10.0).floor(1000), 100);
    }
}

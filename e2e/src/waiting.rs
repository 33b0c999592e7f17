//! Polling with a deadline, and observation windows.
//!
//! A scenario never sleeps to wait for something: it polls a condition until a deadline
//! ([`wait_for`]), polls until a state stops changing ([`wait_stable`]), or, to show that nothing
//! happens for a while, checks repeatedly through the whole window and fails at the first change
//! ([`hold_for`]).

use super::*;

/// Polls `f` every `every` until it returns `Ok`, or panics after `timeout` with the last `Err`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    start.elapsed() < timeout,
                    "timed out after {timeout:?} waiting for {what}; last state: {last}"
                );
            }
        }
        std::thread::sleep(every);
    }
}

/// Polls `f` every `every` until it has returned the same value for `quiet` (e.g. until status
/// writes have settled); returns that value. Panics when the value still changes after `timeout`.
pub fn wait_stable<T: PartialEq>(
    what: &str,
    quiet: Duration,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> T,
) -> T {
    let start = Instant::now();
    let mut value = f();
    let mut since = Instant::now();
    let mut changes = 0u32;
    loop {
        if since.elapsed() >= quiet {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what} to stay unchanged for {quiet:?} \
             ({changes} changes seen)"
        );
        std::thread::sleep(every);
        let now = f();
        if now != value {
            value = now;
            since = Instant::now();
            changes += 1;
        }
    }
}

/// Checks `f` every `every` for the whole of `window` (the last check starts once `window` has
/// passed) and panics at the first `Err`, naming when in the window it came: for "nothing changes
/// for N seconds", so a change fails the test when it happens rather than being sampled once.
/// Returns the number of checks made.
pub fn hold_for(
    what: &str,
    window: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<(), String>,
) -> u32 {
    let start = Instant::now();
    let mut checks = 0u32;
    loop {
        let at = start.elapsed();
        checks += 1;
        if let Err(change) = f() {
            panic!(
                "{what}: broken after {} ms of the {window:?} window (check {checks}): {change}",
                ms(at)
            );
        }
        if at >= window {
            return checks;
        }
        std::thread::sleep(every.min(window - at));
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

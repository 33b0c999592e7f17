//! Polling with a deadline.

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

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

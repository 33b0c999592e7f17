//! The memory budget of buffered request bodies: every byte a request holds in memory is reserved
//! first, so the sum over all requests stays under the budget however many clients send large
//! bodies at once. A request that cannot reserve within the wait is told `503 overloaded`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes reserved at a time are counted in units of this many bytes (the semaphore counts `u32`s
/// per acquire; a KiB unit also keeps tiny bodies from costing a permit each).
const UNIT: usize = 1024;

/// The shared budget.
pub struct BufferBudget {
    permits: Arc<Semaphore>,
    units: usize,
}

/// Bytes reserved by one request; released when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

/// The budget was not available in time.
#[derive(Debug, thiserror::Error)]
#[error("the gateway's request memory budget is exhausted")]
pub struct Exhausted;

impl BufferBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// An empty reservation.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            permit: None,
            units: 0,
        }
    }

    /// Grows `reservation` to cover `bytes`, waiting up to `wait` for other requests to release.
    pub async fn reserve(
        &self,
        reservation: &mut Reservation,
        bytes: usize,
        wait: Duration,
    ) -> Result<(), Exhausted> {
        let want = bytes.div_ceil(UNIT);
        if want <= reservation.units {
            return Ok(());
        }
        let more = want - reservation.units;
        if more > self.units {
            return Err(Exhausted);
        }
        let more_u32 = u32::try_from(more).map_err(|_| Exhausted)?;
        let acquired = match self.permits.clone().try_acquire_many_owned(more_u32) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(wait, self.permits.clone().acquire_many_owned(more_u32))
                .await
                .map_err(|_| Exhausted)?
                .map_err(|_| Exhausted)?,
        };
        match reservation.permit.as_mut() {
            Some(permit) => permit.merge(acquired),
            None => reservation.permit = Some(acquired),
        }
        reservation.units = want;
        Ok(())
    }

    /// Bytes currently free.
    pub fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

impl Reservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.units * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_share_the_budget_and_release_on_drop() {
        let budget = BufferBudget::new(10 * UNIT);
        let mut a = budget.reservation();
        budget
            .reserve(&mut a, 6 * UNIT, Duration::ZERO)
            .await
            .unwrap();
        let mut b = budget.reservation();
        assert!(
            budget
                .reserve(&mut b, 6 * UNIT, Duration::from_millis(10))
                .await
                .is_err()
        );
        budget
            .reserve(&mut b, 4 * UNIT, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        budget
            .reserve(&mut b, 9 * UNIT, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(b.bytes(), 9 * UNIT);
        assert!(
            budget
                .reserve(&mut b, 11 * UNIT, Duration::ZERO)
                .await
                .is_err(),
            "more than the whole budget never waits"
        );
    }
}

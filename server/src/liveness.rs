//! The liveness sweeper: drops agents that went silent (docs/protocol.md §4).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::exchange::Exchange;

/// Sweep every `period`, dropping agents silent for `stale_after`, until `stop` turns true.
pub(crate) fn spawn(
    exchange: Arc<Exchange>,
    period: Duration,
    stale_after: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    exchange.sweep(stale_after);
                }
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    })
}

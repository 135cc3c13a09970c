//! The lease check of the provisioning worker, run by this crate's tests on the in-memory queue
//! and by the adapters' tests on their real queues. Assertions panic, as tests do.
#![allow(clippy::expect_used)]

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::worker::{JobOutcome, ProvisioningWorker};
use crate::testing::faults::FlakyProvisioner;

/// How long `other` may wait for `holder` to start the job before the check calls it a hang
/// (a hang detector, not a measurement).
const START_LIMIT: Duration = Duration::from_secs(10);

/// Runs one job on `holder`, whose provisioner is `slow` (a [`FlakyProvisioner`] with a
/// [`Failure::Slow`](crate::testing::faults::Failure::Slow) delay longer than the queue's visibility
/// timeout), while `other` polls the same queue until `holder` is done. Asserts that the
/// lease held: `holder` completed the job on its first attempt, `other` was never handed it,
/// and `slow` provisioned once.
///
/// # Panics
/// When any of that does not hold, or `holder` takes no job.
pub async fn assert_slow_job_keeps_its_lease(
    holder: &ProvisioningWorker,
    other: &ProvisioningWorker,
    slow: &FlakyProvisioner,
) {
    let token = CancellationToken::new();
    let finished = CancellationToken::new();
    let (report, stolen) = tokio::join!(
        async {
            let report = holder.run_once(&token).await;
            finished.cancel();
            report
        },
        async {
            tokio::time::timeout(START_LIMIT, slow.called())
                .await
                .expect("holder starts the job");
            let mut stolen = Vec::new();
            while !finished.is_cancelled() {
                stolen.extend(other.run_once(&token).await.expect("other worker"));
            }
            stolen
        }
    );
    let report = report.expect("holder worker").expect("holder took the job");
    assert_eq!((report.outcome, report.attempt), (JobOutcome::Completed, 1));
    assert_eq!(stolen, Vec::new(), "never delivered to the other worker");
    assert_eq!(slow.calls(), 1, "provisioned once");
}

//! Conformance suite of [`ConnectionLeases`]: one case per behaviour, and
//! [`connection_leases_conformance!`].
//!
//! [`connection_leases_conformance!`]: crate::connection_leases_conformance

use std::time::Duration;

use crate::domain::ServerId;
use crate::traits::ConnectionLeases;

/// Expands one `#[tokio::test]` per case of [`crate::testing::leases`] against the store
/// `$factory` (an `async fn() -> Fixture<dyn ConnectionLeases, G>`) builds.
#[macro_export]
macro_rules! connection_leases_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; leases;
            grants_stay_within_the_budget,
            released_slots_go_to_others,
            a_refused_acquire_marks_the_server_contended,
            an_expired_holder_is_reclaimed_and_not_renewed,
            a_renewed_holder_keeps_its_slots,
            racing_acquires_never_exceed_the_budget,
            servers_are_independent,
            bad_holders_and_ttls_are_refused,
        );
    };
}

const LONG: Duration = Duration::from_secs(60);

/// A server id no other case uses.
fn server() -> ServerId {
    let id = uuid::Uuid::new_v4().simple().to_string();
    ServerId::new(format!("l{}", &id[..24])).expect("server id")
}

async fn acquire(s: &dyn ConnectionLeases, server: &ServerId, holder: &str, want: u32) -> u32 {
    s.acquire(server, holder, want, 5, LONG)
        .await
        .expect("acquire")
        .held
}

async fn held(s: &dyn ConnectionLeases, server: &ServerId) -> u32 {
    s.held(server).await.expect("held")
}

/// Holders get what they ask for while the budget lasts, then what is left, then nothing;
/// each answer is the holder's total.
pub async fn grants_stay_within_the_budget(s: &dyn ConnectionLeases) {
    let server = server();
    assert_eq!(held(s, &server).await, 0);
    assert_eq!(acquire(s, &server, "a", 3).await, 3);
    assert_eq!(acquire(s, &server, "b", 5).await, 2, "only what is left");
    assert_eq!(acquire(s, &server, "c", 1).await, 0);
    assert_eq!(
        acquire(s, &server, "a", 1).await,
        3,
        "a's total, nothing more"
    );
    assert_eq!(held(s, &server).await, 5);
}

/// An acquire that got less than it asked for tells every holder, on its next renewal, that
/// the server is contended; before that, nobody is told so.
pub async fn a_refused_acquire_marks_the_server_contended(s: &dyn ConnectionLeases) {
    let server = server();
    let first = s.acquire(&server, "a", 5, 5, LONG).await.expect("a");
    assert_eq!(first, crate::traits::LeaseGrant::new(5, false));
    assert!(!s.renew(&server, "a", LONG).await.expect("renew").contended);
    let refused = s.acquire(&server, "b", 1, 5, LONG).await.expect("b");
    assert_eq!(refused, crate::traits::LeaseGrant::new(0, true));
    let renewed = s.renew(&server, "a", LONG).await.expect("renew");
    assert_eq!(renewed, crate::traits::LeaseGrant::new(5, true));
}

/// A release frees slots for others; a holder left with none is forgotten.
pub async fn released_slots_go_to_others(s: &dyn ConnectionLeases) {
    let server = server();
    assert_eq!(acquire(s, &server, "a", 5).await, 5);
    assert_eq!(s.release(&server, "a", 2).await.expect("release"), 3);
    assert_eq!(held(s, &server).await, 3);
    assert_eq!(acquire(s, &server, "b", 5).await, 2);
    assert_eq!(s.release(&server, "a", 9).await.expect("release all"), 0);
    assert_eq!(s.renew(&server, "a", LONG).await.expect("renew").held, 0);
    assert_eq!(held(s, &server).await, 2);
    assert_eq!(s.release(&server, "nobody", 1).await.expect("release"), 0);
}

/// A holder that stops renewing loses its slots once its lease expires: they go to the
/// others, and a late renewal does not bring them back.
pub async fn an_expired_holder_is_reclaimed_and_not_renewed(s: &dyn ConnectionLeases) {
    let server = server();
    let short = Duration::from_millis(200);
    assert_eq!(
        s.acquire(&server, "dead", 4, 5, short)
            .await
            .expect("a")
            .held,
        4
    );
    assert_eq!(acquire(s, &server, "live", 5).await, 1);
    tokio::time::sleep(short * 3).await;
    assert_eq!(
        held(s, &server).await,
        1,
        "the expired holder is not counted"
    );
    assert_eq!(s.renew(&server, "dead", LONG).await.expect("renew").held, 0);
    assert_eq!(
        acquire(s, &server, "live", 5).await,
        5,
        "its share went to the live one"
    );
    assert_eq!(held(s, &server).await, 5);
}

/// A holder that renews within its lease time keeps its slots however long it runs.
pub async fn a_renewed_holder_keeps_its_slots(s: &dyn ConnectionLeases) {
    let server = server();
    let ttl = Duration::from_millis(1_500);
    assert_eq!(s.acquire(&server, "a", 3, 5, ttl).await.expect("a").held, 3);
    for _ in 0..6 {
        tokio::time::sleep(ttl / 5).await;
        assert_eq!(s.renew(&server, "a", ttl).await.expect("renew").held, 3);
    }
    assert_eq!(acquire(s, &server, "b", 5).await, 2);
}

/// Forty holders race for a budget of ten: together they get exactly ten.
pub async fn racing_acquires_never_exceed_the_budget(s: &dyn ConnectionLeases) {
    let server = server();
    let grants = crate::testing::run_concurrently(40, |i| {
        let server = server.clone();
        async move {
            s.acquire(&server, &format!("h{i}"), 1 + (i as u32 % 3), 10, LONG)
                .await
                .expect("acquire")
                .held
        }
    });
    assert_eq!(grants.iter().sum::<u32>(), 10, "{grants:?}");
    assert_eq!(held(s, &server).await, 10);
}

/// One server's budget says nothing about another's.
pub async fn servers_are_independent(s: &dyn ConnectionLeases) {
    let (one, two) = (server(), server());
    assert_eq!(acquire(s, &one, "a", 5).await, 5);
    assert_eq!(acquire(s, &two, "a", 5).await, 5);
    assert_eq!(s.release(&one, "a", 5).await.expect("release"), 0);
    assert_eq!(held(s, &two).await, 5);
}

/// Holder names and lease times out of range are refused with the field named.
pub async fn bad_holders_and_ttls_are_refused(s: &dyn ConnectionLeases) {
    let server = server();
    for (holder, ttl, field) in [
        ("", LONG, "holder"),
        ("a b", LONG, "holder"),
        ("a", Duration::ZERO, "ttl"),
        ("a", Duration::from_secs(2 * 86_400), "ttl"),
    ] {
        let err = s
            .acquire(&server, holder, 1, 5, ttl)
            .await
            .expect_err("refused");
        assert_eq!(err.field(), Some(field), "{err}");
    }
    assert_eq!(held(s, &server).await, 0);
}

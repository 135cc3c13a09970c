//! Conformance suite of [`TenantRegistry`](crate::traits::TenantRegistry).
//!
//! An adapter runs it by writing a factory that returns a fresh registry (and whatever must
//! live as long as it, such as a test database, as the fixture's guard), then expanding the
//! macro in a test file:
//!
//! ```text
//! async fn registry() -> Fixture<dyn TenantRegistry> {
//!     let db = TestDatabase::create().await;
//!     let registry = PostgresRegistry::connect(db.url()).await.unwrap();
//!     Fixture::with_guard(Arc::new(registry), db)
//! }
//! tenant_manager_core::registry_conformance!(registry);
//! ```
//!
//! Each case is also a plain `async fn(&dyn TenantRegistry)` in this module, to call by hand.
//! Cases create tenants with random slugs, e-mails and (for listings) a random plan, so they
//! assert only on what they created themselves; counts are compared before and after.
mod input;
mod listing;
mod members;
mod status;
mod tenants;
mod updates;
mod users;

pub use input::*;
pub use listing::*;
pub use members::*;
pub use status::*;
pub use tenants::*;
pub use updates::*;
pub use users::*;

/// The helpers, at the path adapters' tests imported them from before they had a module of
/// their own.
pub use super::support::{
    expect_conflict, expect_invalid, expect_not_found, random_hex, sample_tenant, sample_user,
    unique_email, unique_slug,
};

/// Expands one `#[tokio::test]` per registry case, each on a fresh fixture from `$factory`
/// (`async fn() -> Fixture<dyn TenantRegistry>`).
#[macro_export]
macro_rules! registry_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; registry;
            create_and_get,
            find_by_slug_and_domain,
            create_with_owner_and_find_user,
            slug_conflict,
            domain_conflict,
            email_conflict_keeps_nothing,
            id_conflict,
            concurrent_same_email_one_winner,
            concurrent_same_slug_one_winner,
            racing_transitions_one_winner,
            all_transitions_follow_the_life_cycle,
            transition_records_reason,
            pagination_without_skips_or_repeats,
            count_by_status,
            count_by_server,
            purge_only_after_deleted,
            update_validates_and_applies,
            update_domain_conflict,
            bad_input_is_refused_with_field,
            unicode_and_sql_metacharacters_are_stored_verbatim,
            lookups_with_bad_input_find_nothing,
            users_listed_oldest_first,
            unknown_ids_are_not_found,
            password_hash_is_replaced_only_while_unchanged,
            racing_password_hash_replacements_one_winner,
            roles_change_and_the_last_owner_stays,
            racing_owner_changes_keep_an_owner,
            invitations_take_seats_up_to_the_limit,
            racing_invitations_never_exceed_the_seats,
            accepting_an_invitation_creates_its_user_once,
            an_operators_invitation_records_no_inviter,
            expired_or_revoked_invitations_are_refused,
            racing_acceptances_one_winner,
        );
    };
}

/// Runs every case of the suite against `r`, one after the other, from a `main` or a single
/// test (the macro above gives each case a test of its own). Needs a multi-thread tokio
/// runtime, as the racing cases do. The list is the macro's, in the same order.
///
/// # Panics
/// On the first case that fails, with its assertion.
pub async fn run_all(r: &dyn crate::traits::TenantRegistry) {
    create_and_get(r).await;
    find_by_slug_and_domain(r).await;
    create_with_owner_and_find_user(r).await;
    slug_conflict(r).await;
    domain_conflict(r).await;
    email_conflict_keeps_nothing(r).await;
    id_conflict(r).await;
    concurrent_same_email_one_winner(r).await;
    concurrent_same_slug_one_winner(r).await;
    racing_transitions_one_winner(r).await;
    all_transitions_follow_the_life_cycle(r).await;
    transition_records_reason(r).await;
    pagination_without_skips_or_repeats(r).await;
    count_by_status(r).await;
    count_by_server(r).await;
    purge_only_after_deleted(r).await;
    update_validates_and_applies(r).await;
    update_domain_conflict(r).await;
    bad_input_is_refused_with_field(r).await;
    unicode_and_sql_metacharacters_are_stored_verbatim(r).await;
    lookups_with_bad_input_find_nothing(r).await;
    users_listed_oldest_first(r).await;
    unknown_ids_are_not_found(r).await;
    password_hash_is_replaced_only_while_unchanged(r).await;
    racing_password_hash_replacements_one_winner(r).await;
    roles_change_and_the_last_owner_stays(r).await;
    racing_owner_changes_keep_an_owner(r).await;
    invitations_take_seats_up_to_the_limit(r).await;
    racing_invitations_never_exceed_the_seats(r).await;
    accepting_an_invitation_creates_its_user_once(r).await;
    an_operators_invitation_records_no_inviter(r).await;
    expired_or_revoked_invitations_are_refused(r).await;
    racing_acceptances_one_winner(r).await;
}

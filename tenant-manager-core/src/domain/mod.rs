//! Domain types: tenants, their status, isolation and placement, plans, users, life-cycle
//! events.

mod backup_schedule;
mod event;
mod ids;
mod invitation;
mod moves;
mod naming;
mod opaque;
mod page;
mod placement;
mod plan;
mod plan_book;
mod rules;
mod secret;
mod slug;
mod status;
mod tenant;
mod text;
mod user;

pub use backup_schedule::{
    BackupSchedule, MAX_BACKUP_INTERVAL_MS, MAX_RETENTION_SLOTS, MIN_BACKUP_INTERVAL_MS,
};
pub use event::{Actor, EventKind, MAX_EVENT_DETAILS_BYTES, TenantEvent};
pub use ids::{BackupId, EventId, InvitationId, JobId, MoveId, RefreshTokenId, TenantId, UserId};
pub use invitation::{Invitation, InvitationState, NewInvitation};
pub use moves::{MoveCheck, MoveRecord, MoveState, MoveStep, TableCheck};
pub use naming::StorageNaming;
pub use opaque::{OpaqueToken, TokenDigest};
pub use page::{MAX_PAGE_SIZE, Page, TenantQuery};
pub use placement::{Isolation, Placement, ServerId};
pub use plan::{DbLimits, Plan, PlanCatalog, QuotaPolicy, RateLimit};
pub use plan_book::PlanBook;
pub(crate) use rules::{validate_identifier, validate_region};
pub use secret::Secret;
pub use slug::{RESERVED_SLUGS, TenantSlug};
pub use status::{TenantStatus, validate_status_reason};
pub use tenant::{NewTenant, Tenant, TenantUpdate, validate_domain, validate_name};
pub use text::{tail_utf8, truncate_utf8};
pub use user::{Email, NewUser, PasswordHash, Role, User};

//! axum extractors (feature `axum`): [`TenantContext`](crate::TenantContext), [`Tenant`] and
//! [`TenantConn`]. A route without the layer they need is answered with
//! `500 middleware_missing` naming the layer to add.

mod conn;
mod rejection;
mod tenant;

pub use conn::TenantConn;
pub use rejection::TenantRejection;
pub use tenant::Tenant;

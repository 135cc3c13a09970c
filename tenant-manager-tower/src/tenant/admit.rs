//! From the resolutions of a request to its `TenantContext`: one lookup, the status check, and
//! the check that every resolver named the same tenant.

use http::request::Parts;
use http::{HeaderMap, Request};
use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::{Error, Result, Tenant, TenantStatus};
use tracing::Span;

use crate::context::TenantContext;
use crate::gate::Admission;
use crate::resolve::{Resolution, ResolveTenant};

/// Runs every resolver in order, then every cross-check. The first resolution names the
/// tenant; all others must name the same one (checked once it is looked up). A cross-check
/// never names a tenant on its own. A resolver error refuses the request.
pub(super) fn resolve_all(
    resolvers: &[Box<dyn ResolveTenant>],
    checks: &[Box<dyn ResolveTenant>],
    request: &Parts,
) -> Result<Vec<Resolution>> {
    let mut found = Vec::with_capacity(resolvers.len() + checks.len());
    for resolver in resolvers {
        if let Some(resolution) = resolver.resolve(request)? {
            found.push(resolution);
        }
    }
    if found.is_empty() {
        return Err(Error::unauthenticated("the request names no tenant"));
    }
    for check in checks {
        if let Some(resolution) = check.resolve(request)? {
            found.push(resolution);
        }
    }
    Ok(found)
}

/// Looks the first resolution's tenant up and admits it if it is `Active` and every other
/// resolution names it too.
///
/// Unknown, deleting and deleted tenants are `401`; suspended `403`; pending, provisioning and
/// failed `409`; resolutions naming different tenants `403`.
pub(super) async fn admit(
    lookup: &TenantLookup,
    resolutions: Vec<Resolution>,
) -> Result<TenantAdmission> {
    let Some(primary) = resolutions.first() else {
        return Err(Error::unauthenticated("the request names no tenant"));
    };
    let tenant = lookup.get(&primary.key).await?.ok_or_else(unknown_tenant)?;
    check_status(&tenant)?;
    if !resolutions
        .iter()
        .all(|resolution| resolution.names(&tenant))
    {
        tracing::warn!(tenant = %tenant.id, "request names more than one tenant");
        return Err(Error::forbidden("the request names more than one tenant"));
    }
    let user = resolutions
        .iter()
        .find_map(|resolution| resolution.user.zip(resolution.role));
    let Some(mut primary) = resolutions.into_iter().next() else {
        return Err(Error::unauthenticated("the request names no tenant"));
    };
    if let Some((user, role)) = user {
        primary = primary.with_user(user, role);
    }
    let context = TenantContext::from_resolution(tenant, primary);
    Ok(TenantAdmission(Some(context)))
}

fn unknown_tenant() -> Error {
    Error::unauthenticated("unknown tenant")
}

fn check_status(tenant: &Tenant) -> Result<()> {
    match tenant.status {
        // A moving tenant's reads go on; the host refuses its writes (`Error::Moving`).
        TenantStatus::Active | TenantStatus::Moving => Ok(()),
        TenantStatus::Suspended => Err(Error::Suspended { tenant: tenant.id }),
        TenantStatus::Pending | TenantStatus::Provisioning | TenantStatus::Failed => {
            Err(Error::NotReady {
                tenant: tenant.id,
                status: tenant.status,
            })
        }
        TenantStatus::Deleting | TenantStatus::Deleted => Err(unknown_tenant()),
    }
}

/// The admitted tenant: inserted into the request extensions and recorded in the span.
pub(crate) struct TenantAdmission(Option<TenantContext>);

impl Admission for TenantAdmission {
    fn admit<B>(&mut self, request: &mut Request<B>) -> Span {
        let Some(context) = self.0.take() else {
            return Span::none();
        };
        let tenant = &context.tenant;
        let user = context.user().map(tracing::field::display);
        // Fill the fields when an outer span (such as tower-http's TraceLayer) declared them.
        let current = Span::current();
        current.record("tenant_id", tracing::field::display(tenant.id));
        current.record("tenant_slug", tenant.slug.as_str());
        let span = tracing::info_span!(
            "tenant",
            tenant_id = %tenant.id,
            tenant_slug = tenant.slug.as_str(),
            user_id = user,
            via = context.via().as_str(),
        );
        request.extensions_mut().insert(context);
        span
    }

    fn finish(self, _headers: &mut HeaderMap) {}
}

//! Bounded label values: method, route template, status and the opt-in tenant label.

use std::collections::HashSet;
use std::sync::Arc;

use http::{Extensions, Method, StatusCode};
use metrics::SharedString;
use tenant_manager_core::{Error, Result, TenantId};

use crate::context::TenantContext;

/// The `route` label of requests that matched no route template.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The route template of a request (such as `/users/{id}`), for hosts that route without axum.
///
/// Insert it into the request extensions before the [`MetricsLayer`](crate::MetricsLayer)
/// runs; with feature `axum`, axum's `MatchedPath` is used when this is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate(Arc<str>);

impl RouteTemplate {
    /// A route template. Pass the template, never the raw path, or the label set is unbounded.
    pub fn new(template: impl Into<Arc<str>>) -> Self {
        Self(template.into())
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `method` label: the standard methods by name, any other as `other`.
pub(super) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The three digits of every status code (100 to 999), so that `status` labels are `'static`.
static STATUS_DIGITS: [u8; 2700] = status_digits();

const fn status_digits() -> [u8; 2700] {
    let mut digits = [0_u8; 2700];
    let mut code: usize = 100;
    while code < 1000 {
        let at = (code - 100) * 3;
        // Each is a single decimal digit, so the casts are exact.
        digits[at] = b'0' + (code / 100) as u8;
        digits[at + 1] = b'0' + (code / 10 % 10) as u8;
        digits[at + 2] = b'0' + (code % 10) as u8;
        code += 1;
    }
    digits
}

/// The `status` label: the code's three digits, without allocating.
pub(super) fn status_label(status: StatusCode) -> SharedString {
    let digits = usize::from(status.as_u16())
        .checked_sub(100)
        .and_then(|offset| STATUS_DIGITS.get(offset * 3..offset * 3 + 3))
        .and_then(|digits| std::str::from_utf8(digits).ok());
    match digits {
        Some(digits) => SharedString::const_str(digits),
        None => SharedString::from(status.as_str().to_owned()),
    }
}

/// The `route` label: the route template, never the raw path.
pub(super) fn route_label(extensions: &Extensions) -> SharedString {
    if let Some(template) = extensions.get::<RouteTemplate>() {
        return SharedString::from(template.0.clone());
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
        return SharedString::from(matched.as_str().to_owned());
    }
    SharedString::const_str(UNMATCHED_ROUTE)
}

/// The tenants that get their own `tenant` label value; all others share `other`.
///
/// Keeps the label set bounded: at most [`TenantLabels::MAX`] tenants, chosen by the host
/// (for example its largest customers). Requests without a tenant get `none`.
#[derive(Debug, Clone, Default)]
pub struct TenantLabels {
    tenants: HashSet<TenantId>,
}

impl TenantLabels {
    /// Most tenants that may have their own label value.
    pub const MAX: usize = 1000;

    /// Labels these tenants by slug.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `tenant_labels` when more than [`TenantLabels::MAX`]
    /// tenants are given.
    pub fn new(tenants: impl IntoIterator<Item = TenantId>) -> Result<Self> {
        let tenants: HashSet<TenantId> = tenants.into_iter().collect();
        if tenants.len() > Self::MAX {
            return Err(Error::invalid(
                "tenant_labels",
                "at most 1000 tenants may have their own label",
            ));
        }
        Ok(Self { tenants })
    }

    /// The label value for a request.
    pub(super) fn value(&self, context: Option<&TenantContext>) -> SharedString {
        match context {
            None => SharedString::const_str("none"),
            Some(context) if self.tenants.contains(&context.tenant.id) => {
                SharedString::from(context.tenant.slug.as_str().to_owned())
            }
            Some(_) => SharedString::const_str("other"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded_and_routes_fall_back() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"PURGE").unwrap_or_default();
        assert_eq!(method_label(&odd), "other");
        let mut extensions = Extensions::new();
        assert_eq!(route_label(&extensions).as_ref(), UNMATCHED_ROUTE);
        extensions.insert(RouteTemplate::new("/users/{id}"));
        assert_eq!(route_label(&extensions).as_ref(), "/users/{id}");
    }

    #[test]
    fn status_labels_are_the_codes_digits() {
        for code in 100..1000_u16 {
            let status = StatusCode::from_u16(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(status_label(status).as_ref(), status.as_str());
        }
    }

    #[test]
    fn tenant_labels_are_capped() {
        assert!(TenantLabels::new((0..=TenantLabels::MAX).map(|_| TenantId::new())).is_err());
        let labels = TenantLabels::new([TenantId::new()]).unwrap_or_default();
        assert_eq!(labels.value(None).as_ref(), "none");
    }
}

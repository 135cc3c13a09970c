//! Bounded label values: method, route template, status and the opt-in tenant label.

use std::collections::HashSet;
use std::sync::Arc;

use http::{Extensions, Method};
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
    fn tenant_labels_are_capped() {
        assert!(TenantLabels::new((0..=TenantLabels::MAX).map(|_| TenantId::new())).is_err());
        let labels = TenantLabels::new([TenantId::new()]).unwrap_or_default();
        assert_eq!(labels.value(None).as_ref(), "none");
    }
}

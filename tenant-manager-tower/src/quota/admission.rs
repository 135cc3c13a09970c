//! What an admitted request carries to its response: the enforcer's decision, written into
//! the `RateLimit-*` headers.

use http::{HeaderMap, Request};
use tenant_manager_core::RateDecision;
use tracing::Span;

use super::headers;
use crate::gate::Admission;

/// The enforcer's decision, written into the response headers (none when failing open).
pub(super) struct QuotaAdmission(pub(super) Option<RateDecision>);

impl Admission for QuotaAdmission {
    fn admit<B>(&mut self, _request: &mut Request<B>) -> Span {
        Span::none()
    }

    fn finish(self, headers: &mut HeaderMap) {
        if let Some(decision) = &self.0 {
            headers::apply(decision, headers);
        }
    }
}

//! The `tenant_manager_top_tenant_*` series: rendered at each scrape from the top-K sketch
//! and appended to the exporter's text, so only the K tenants it holds now carry a `tenant`
//! label value.
//!
//! `metrics-exporter-prometheus` keeps every series it was ever given until its idle timeout
//! (which applies to every series of the recorder alike, and which would also drop a tenant
//! still in the top K that had no request for a while); a tenant that left the top K would
//! linger with its last value. Rendering from the sketch makes the set of `tenant` values
//! exactly the current top K, at most `TOP_TENANTS_K` of them, whatever the number of tenants.

use std::fmt::Write as _;
use std::time::Instant;

use tenant_manager::topk::{RankBy, TopTenant, TopTenants};

/// Requests of each of the K busiest tenants (decayed: halved every half-life).
pub(crate) const REQUESTS: &str = "tenant_manager_top_tenant_requests";
/// Error answers (5xx) of each of the K busiest tenants (decayed).
pub(crate) const ERRORS: &str = "tenant_manager_top_tenant_errors";
/// p50 and p99 response time of each of the K busiest tenants.
pub(crate) const LATENCY: &str = "tenant_manager_top_tenant_latency_seconds";

/// The series of the tenants `top` holds at `now`, in the Prometheus text format; empty when
/// it holds none.
pub(crate) fn render(top: &TopTenants, now: Instant) -> String {
    let tenants = top
        .top(top.config().k, RankBy::Requests, now)
        .unwrap_or_default();
    if tenants.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(256 + tenants.len() * 300);
    family(
        &mut out,
        (REQUESTS, "gauge"),
        "Requests of the busiest tenants (top K by a Space-Saving sketch, halved every half-life).",
        &tenants,
        |out, labels, t| sample(out, REQUESTS, labels, t.requests as f64),
    );
    family(
        &mut out,
        (ERRORS, "gauge"),
        "Error answers (5xx) of the busiest tenants, halved every half-life.",
        &tenants,
        |out, labels, t| sample(out, ERRORS, labels, t.errors as f64),
    );
    family(
        &mut out,
        // `quantile` samples: Prometheus reserves that label for summaries.
        (LATENCY, "summary"),
        "Response time quantiles (0.5, 0.99) of the busiest tenants, in seconds.",
        &tenants,
        |out, labels, t| {
            sample(
                out,
                LATENCY,
                &format!("{labels},quantile=\"0.5\""),
                t.p50_seconds,
            );
            sample(
                out,
                LATENCY,
                &format!("{labels},quantile=\"0.99\""),
                t.p99_seconds,
            );
        },
    );
    out
}

fn family(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    tenants: &[TopTenant],
    each: impl Fn(&mut String, &str, &TopTenant),
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for tenant in tenants {
        let labels = format!("tenant=\"{}\"", escape(tenant.slug.as_str()));
        each(out, &labels, tenant);
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// A label value as the text format wants it (slugs never need it; this keeps it so).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use tenant_manager::topk::TopTenantsConfig;
    use tenant_manager::{TenantId, TenantSlug};

    use super::*;

    fn tenant_values(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once("tenant=\""))
            .filter_map(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.to_owned())
            .collect()
    }

    fn slug(n: usize) -> TenantSlug {
        TenantSlug::new(format!("tenant_{n}")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_scrape_never_carries_more_than_k_tenants() {
        let k = 10;
        let top = TopTenants::new(TopTenantsConfig::default().with_k(k))
            .unwrap_or_else(|e| panic!("{e}"));
        let now = Instant::now();
        let exporter = crate::metrics::handle();
        let mut seen = BTreeSet::new();
        for round in 0..5 {
            // 1,000 new tenants a round, once each, among three steady heavy ones.
            for n in 0..1000 {
                let id = round * 1000 + n;
                top.record(TenantId::new(), &slug(id), false, Duration::ZERO, now);
                if n % 10 == 0 {
                    for heavy in 0..3 {
                        let heavy_id = TenantId::from_uuid(uuid::Uuid::from_u128(heavy + 1));
                        top.record(
                            heavy_id,
                            &slug(90_000 + heavy as usize),
                            n % 20 == 0,
                            Duration::from_millis(3),
                            now,
                        );
                    }
                }
            }
            let scrape = format!("{}{}", exporter.render(), render(&top, now));
            let values = tenant_values(&scrape);
            assert!(
                values.len() <= k,
                "{} tenant values: {values:?}",
                values.len()
            );
            for heavy in 0..3 {
                let name = format!("tenant_{}", 90_000 + heavy);
                assert!(values.contains(&name), "{name} missing from {values:?}");
            }
            seen.extend(values);
        }
        assert!(
            seen.len() > k,
            "tenants dropped out and were replaced: {}",
            seen.len()
        );
    }

    #[test]
    fn a_tenant_that_leaves_the_top_k_is_no_longer_exported() {
        let half_life = Duration::from_secs(60);
        let top = TopTenants::new(
            TopTenantsConfig::default()
                .with_k(1)
                .with_shards(1)
                .with_half_life(half_life),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let first = TenantId::new();
        for _ in 0..8 {
            top.record(first, &slug(1), true, Duration::from_millis(30), start);
        }
        let before = render(&top, start);
        assert!(before.contains("tenant_manager_top_tenant_requests{tenant=\"tenant_1\"} 8"));
        assert!(before.contains("tenant_manager_top_tenant_errors{tenant=\"tenant_1\"} 8"));
        assert!(before.contains(
            "tenant_manager_top_tenant_latency_seconds{tenant=\"tenant_1\",quantile=\"0.99\"} 0.05"
        ), "{before}");
        let later = start + half_life * 10;
        top.record(TenantId::new(), &slug(2), false, Duration::ZERO, later);
        let after = render(&top, later);
        assert_eq!(
            tenant_values(&after),
            BTreeSet::from(["tenant_2".to_owned()]),
            "{after}"
        );
    }
}

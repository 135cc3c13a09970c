//! Where a fleet migration's time goes: the migrator's `debug` spans (`migrate.*` per tenant,
//! `secure.*` inside the wall's check), summed by name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Span count and summed open-to-close time per span name.
pub(crate) type Totals = BTreeMap<&'static str, (u64, Duration)>;

/// A layer summing the time each span of the migrator stays open.
#[derive(Clone, Default)]
pub(crate) struct Phases(Arc<Mutex<Totals>>);

struct Opened(Instant);

fn measured(name: &str) -> bool {
    name.starts_with("migrate.") || name.starts_with("secure.")
}

impl<S> Layer<S> for Phases
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !measured(attrs.metadata().name()) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(Opened(at)) = span.extensions_mut().remove::<Opened>() else {
            return;
        };
        let mut totals = self.0.lock().unwrap();
        let entry = totals.entry(span.name()).or_default();
        entry.0 += 1;
        entry.1 += at.elapsed();
    }
}

impl Phases {
    /// Installs the layer as the process's subscriber.
    pub(crate) fn install() -> Self {
        use tracing_subscriber::layer::SubscriberExt;
        let phases = Self::default();
        let subscriber = tracing_subscriber::registry().with(phases.clone());
        tracing::subscriber::set_global_default(subscriber).expect("subscriber");
        phases
    }

    /// The totals since the last call, and starts again from zero.
    pub(crate) fn take(&self) -> Totals {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Markdown rows: per phase, the spans seen, the mean time per tenant and the share of the
/// tenants' summed time (`migrate.tenant`, whole tenants including the record).
pub(crate) fn rows(totals: &Totals, tenants: usize) -> Vec<String> {
    let whole = totals
        .get("migrate.tenant")
        .map_or(Duration::ZERO, |(_, d)| *d)
        .as_secs_f64();
    totals
        .iter()
        .map(|(name, (count, total))| {
            let secs = total.as_secs_f64();
            format!(
                "| {name} | {count} | {:.2} ms | {:.0} % |",
                secs * 1000.0 / tenants.max(1) as f64,
                if whole > 0.0 {
                    100.0 * secs / whole
                } else {
                    0.0
                }
            )
        })
        .collect()
}

//! Ratios measured interleaved: the peers take turns, many rounds, and each peer's median
//! round counts. Drift in the machine's load hits every peer alike.

use std::time::Duration;

/// One peer: runs `ops` operations and returns how long they took.
pub(crate) type Runner<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// The median time per operation of each peer, over `rounds` rounds of `ops` operations.
pub(crate) fn medians(rounds: usize, ops: u64, peers: &mut [(&str, Runner<'_>)]) -> Vec<Duration> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); peers.len()];
    for (_, run) in peers.iter_mut() {
        run(ops); // warm-up
    }
    for round in 0..rounds {
        // Rotate who goes first, so no peer always follows the same one.
        for i in 0..peers.len() {
            let at = (i + round) % peers.len();
            let elapsed = (peers[at].1)(ops);
            times[at].push(elapsed / u32::try_from(ops).unwrap_or(u32::MAX));
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_unstable();
            t[t.len() / 2]
        })
        .collect()
}

/// A row of the ratio table: what, the measured peer, its baseline, and their medians.
pub(crate) struct Ratio {
    pub(crate) what: String,
    pub(crate) peer: Duration,
    pub(crate) baseline: Duration,
    pub(crate) target: Option<f64>,
}

/// The ratio table, in Markdown.
pub(crate) fn table(ratios: &[Ratio]) -> String {
    let mut out = String::from(
        "interleaved medians\n| comparison | measured | baseline | ratio | target |\n|---|---|---|---|---|\n",
    );
    for r in ratios {
        let ratio = r.peer.as_secs_f64() / r.baseline.as_secs_f64().max(1e-12);
        let target = match r.target {
            Some(t) if ratio <= t => format!("<= {t} met"),
            Some(t) => format!("<= {t} MISSED"),
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {:.2?} | {:.2?} | {ratio:.2} | {target} |\n",
            r.what, r.peer, r.baseline
        ));
    }
    out
}

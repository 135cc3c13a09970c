//! The tenant wall's attack suite, through the pool engine's checkout against the real
//! Postgres (the Rust port of `sql/wall/attacks.sh`, `docs/wall.md` section 2).
//!
//! Schema tenants A and B, shared tenants A2 and B2, one database, pools logged in as the
//! app login behind the wall. Every case runs attacker SQL inside the engine's checkout for
//! A (or A2; `raw_connection` logs in as the app login directly) and counts what it got of
//! B and B2 by any channel (result rows, error texts, COPY output, NOTIFY payloads, advisory
//! lock keys, catalog statistics), the traps of A that reached the next tenant on the same
//! connection, and whether B's rows (digest read as the admin) changed.
//!
//! - `the_wall_holds_against_every_attack`: every case with the whole wall: 0.
//! - `every_attack_leaks_with_its_defence_off`: every case with the one defence it tests
//!   switched off (by the admin, or a raw seat doing the engine's checkout SQL minus that
//!   defence): more than 0, so each case can fail. The wall is put back after each.
//!
//! Both report every case before asserting (`-- --nocapture` shows the table).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;
mod wall_support;

use wall_support::switches::Switch::{self, *};
use wall_support::world::World;
use wall_support::{Case, Mode, Outcome, cases_catalog, cases_next, cases_proof, cases_read};

const fn case(
    name: &'static str,
    run: for<'w> fn(&'w World, Mode) -> futures::future::BoxFuture<'w, Outcome>,
    off: &'static [Switch],
    off_says: &'static str,
) -> Case {
    Case {
        name,
        off,
        off_says,
        known_hole: false,
        run,
    }
}

const PRE_WALL_ROLE: &str = "app login a member of B's role, B's table not forcing RLS";
const RLS_OFF: &str = "row-level security disabled on B's and the shared table";

const CASES: &[Case] = &[
    case(
        "set_role",
        cases_read::set_role,
        &[MemberOfB, NoForceB],
        PRE_WALL_ROLE,
    ),
    case(
        "set_config",
        cases_read::set_config,
        &[PoliciesOnSetting],
        "policies on the plain setting app.tenant_id",
    ),
    case(
        "forged_proof",
        cases_proof::forged_proof,
        &[EnterNoVerify],
        "wall.enter() accepts any proof",
    ),
    case(
        "replay_other_session",
        cases_proof::replay_other_session,
        &[EnterAnyBackend],
        "wall.enter() accepts a proof made for another backend",
    ),
    case(
        "replay_earlier_checkout",
        cases_proof::replay_earlier_checkout,
        &[NoNonceFloor],
        "wall.enter() without the nonce floor",
    ),
    case(
        "schema_qualified",
        cases_read::schema_qualified,
        &[RlsOffB],
        RLS_OFF,
    ),
    case(
        "catalog_probes",
        cases_catalog::catalog_probes,
        &[RlsOffB],
        RLS_OFF,
    ),
    case(
        "create_objects",
        cases_catalog::create_objects,
        &[MemberOfB],
        "app login a member of B's role",
    ),
    case(
        "temp_objects",
        cases_next::temp_objects,
        &[],
        "raw seat: the engine's reset without DISCARD TEMP",
    ),
    case(
        "prepared_poison",
        cases_next::prepared_poison,
        &[],
        "raw seat: the engine's reset without the prepared statement check",
    ),
    case("copy", cases_read::copy, &[RlsOffB], RLS_OFF),
    case(
        "listen_notify",
        cases_next::listen_notify,
        &[RlsOffB],
        "RLS off on B's tables; raw seat: the reset without UNLISTEN *",
    ),
    case(
        "advisory",
        cases_next::advisory,
        &[RlsOffB],
        "RLS off on B's tables; raw seat: the reset without pg_advisory_unlock_all()",
    ),
    case(
        "wall_state",
        cases_proof::wall_state,
        &[KeysReadable],
        "the key table readable by the app login",
    ),
    case(
        "raw_connection",
        cases_read::raw_connection,
        &[MemberOfB, NoForceB],
        PRE_WALL_ROLE,
    ),
    Case {
        known_hole: true,
        ..case(
            "planner_estimates",
            cases_catalog::planner_estimates,
            &[RlsOffB],
            RLS_OFF,
        )
    },
];

/// One case in one mode: switches (off), the attack, B's digest before and after, then the
/// wall and the rows put back (off).
async fn run(world: &World, case: &Case, mode: Mode) -> Outcome {
    if mode == Mode::Off {
        for switch in case.off {
            switch.apply(world).await;
        }
    }
    let before = world.digest_b().await;
    let mut outcome = (case.run)(world, mode).await;
    outcome.changed = world.digest_b().await != before;
    if mode == Mode::Off {
        world.restore().await;
    }
    outcome
}

fn line(verdict: &str, case: &Case, outcome: &Outcome, mode: Mode) -> String {
    let mut line = format!(
        "{verdict:<10} {:<24} read {} rows of B, {} traps, B changed: {}",
        case.name, outcome.read, outcome.traps, outcome.changed
    );
    if mode == Mode::Off {
        line.push_str(&format!("  [off: {}]", case.off_says));
    }
    for info in &outcome.info {
        line.push_str(&format!("  ({info})"));
    }
    line
}

#[tokio::test]
async fn the_wall_holds_against_every_attack() {
    let world = World::new().await;
    let (mut report, mut failed) = (Vec::new(), Vec::new());
    for case in CASES {
        let outcome = run(&world, case, Mode::On).await;
        let verdict = match (case.known_hole, outcome.leaks()) {
            (false, 0) => "PASS",
            (true, n) if n > 0 => "KNOWN HOLE",
            (true, _) => {
                failed.push(case.name);
                "CLOSED?"
            }
            (false, _) => {
                failed.push(case.name);
                "FAIL"
            }
        };
        report.push(line(verdict, case, &outcome, Mode::On));
    }
    world.assert_intact().await;
    let report = report.join("\n");
    println!("== wall on\n{report}");
    assert!(
        failed.is_empty(),
        "{failed:?} (a known hole that no longer leaks: update the suite and docs/wall.md)\n{report}"
    );
}

#[tokio::test]
async fn every_attack_leaks_with_its_defence_off() {
    let world = World::new().await;
    let (mut report, mut failed) = (Vec::new(), Vec::new());
    for case in CASES {
        let outcome = run(&world, case, Mode::Off).await;
        let verdict = if outcome.leaks() > 0 {
            "LEAKS"
        } else {
            failed.push(case.name);
            "NO LEAK"
        };
        report.push(line(verdict, case, &outcome, Mode::Off));
    }
    let report = report.join("\n");
    println!("== wall off, one defence at a time\n{report}");
    assert!(
        failed.is_empty(),
        "cases that cannot fail: {failed:?}\n{report}"
    );
}

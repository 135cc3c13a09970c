//! `AdminKeyLayer` over a plain `tower::service_fn`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Echo, get, send};
use tenant_manager_core::Secret;
use tenant_manager_tower::AdminKeyLayer;
use tower::Layer;

const KEY: &str = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=";

#[tokio::test]
async fn only_the_exact_key_passes() {
    let layer = AdminKeyLayer::new(Secret::new(KEY)).unwrap();
    let echo = Echo::default();
    let (status, _, _) = send(
        layer.layer(echo.service()),
        get("/admin/tenants", &[("x-admin-key", KEY)]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(echo.calls(), 1);

    let wrong_last = format!("{}A", &KEY[..KEY.len() - 1]);
    let longer = format!("{KEY}x");
    let cases: [&[(&str, &str)]; 6] = [
        &[],
        &[("x-admin-key", "")],
        &[("x-admin-key", &wrong_last)],
        &[("x-admin-key", &KEY[..KEY.len() - 1])],
        &[("x-admin-key", &longer)],
        &[("x-admin-key", KEY), ("x-admin-key", KEY)],
    ];
    for headers in cases {
        let echo = Echo::default();
        let (status, _, body) =
            send(layer.layer(echo.service()), get("/admin/tenants", headers)).await;
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(body["error"]["code"], "unauthenticated");
        assert_eq!(echo.calls(), 0, "{headers:?}");
    }
}

#[test]
fn short_keys_are_refused_and_never_printed() {
    let error = AdminKeyLayer::new(Secret::new("short")).err();
    assert_eq!(error.as_ref().and_then(|e| e.field()), Some("admin_key"));
    assert!(AdminKeyLayer::new(Secret::new(format!("{KEY} with spaces"))).is_err());
    let layer = AdminKeyLayer::new(Secret::new(KEY)).unwrap();
    let debug = format!("{layer:?}");
    assert!(!debug.contains(KEY) && debug.contains("***"), "{debug}");
}

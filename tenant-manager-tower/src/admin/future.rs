//! Response future of [`AdminKeyService`](super::AdminKeyService).

crate::gate::gate_response_future!(
    /// Response future of [`AdminKeyService`](super::AdminKeyService).
    ()
);

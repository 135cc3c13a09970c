//! Response future of [`QuotaService`](super::QuotaService).

crate::gate::gate_response_future!(
    /// Response future of [`QuotaService`](super::QuotaService).
    super::admission::QuotaAdmission
);

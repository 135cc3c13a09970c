//! Response future of [`TenantService`](super::TenantService).

crate::gate::gate_response_future!(
    /// Response future of [`TenantService`](super::TenantService).
    super::admit::TenantAdmission
);

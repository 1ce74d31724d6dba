//! Outbound HTTP for plugins: grants, secrets and the shared client.

mod client;
mod policy;
mod secrets;
mod wasi_hooks;

pub use client::{Egress, EgressCounters, EgressError, EgressLimits, Exchange, InboundResponse, OutboundRequest};
pub use policy::{Denial, EgressPolicy, GrantParseError, HostGrant};
pub use secrets::{SecretError, SecretSource, SecretSpec, Secrets};
pub use wasi_hooks::EgressHooks;

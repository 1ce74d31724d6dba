//! Outbound HTTP for plugins: grants, address screening, secrets and the
//! shared client.

mod address;
mod client;
mod policy;
mod resolver;
mod secrets;
mod wasi_hooks;

pub use address::internal_range;
pub use client::{Egress, EgressCounters, EgressError, EgressLimits, InboundResponse, OutboundRequest};
pub use policy::{Denial, EgressPolicy, GrantParseError, HostGrant, Reach};
pub use resolver::{BlockedAddresses, GuardedResolver};
pub use secrets::{SecretError, SecretHost, SecretSource, SecretSpec, Secrets};
pub use wasi_hooks::EgressHooks;

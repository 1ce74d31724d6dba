//! Outbound HTTP for plugins: grants, address screening, secrets, the
//! shared client, and the per-call scope both HTTP doors draw on.
//!
//! This layer knows nothing of the sandbox: the sandbox hands each plugin
//! instance a [`CallScope`] and calls [`Egress`] (or installs
//! [`EgressHooks`] for `wasi:http`).

mod address;
mod client;
mod policy;
mod resolver;
mod scope;
mod secrets;
mod wasi_hooks;

pub use address::internal_range;
pub use client::{Egress, EgressCounters, EgressError, EgressLimits, InboundResponse, OutboundRequest};
pub use policy::{Denial, EgressPolicy, GrantParseError, HostGrant, Reach, is_loopback};
pub use resolver::{BlockedAddresses, GuardedResolver};
pub use scope::{BudgetExceeded, BufferHold, ByteBudget, CallScope, MAX_EXCHANGES, Ticket};
pub use secrets::{SecretError, SecretHost, SecretSource, SecretSpec, Secrets};
pub use wasi_hooks::EgressHooks;

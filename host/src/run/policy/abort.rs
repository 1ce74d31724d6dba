//! Why a run is aborted, and what that makes of the items it ends.

use serde::Serialize;

use crate::model::FailureClass;

/// Why a run was aborted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AbortReason {
    /// An item ended with a fail-fast class.
    FailFast { class: FailureClass, item: String },
    /// The batch deadline passed.
    BatchDeadline,
    /// A budget (`--max-total-tokens`, `--max-cost`) was used up.
    Budget { limit: String },
}

impl AbortReason {
    /// The class given to items the abort ends.
    pub fn class(&self) -> FailureClass {
        match self {
            AbortReason::FailFast { .. } | AbortReason::Budget { .. } => FailureClass::Aborted,
            AbortReason::BatchDeadline => FailureClass::BatchDeadlineExceeded,
        }
    }

    /// A sentence for result records and the summary.
    pub fn message(&self) -> String {
        match self {
            AbortReason::FailFast { class, item } => {
                format!("run aborted: item `{item}` failed with fail-fast class `{class}`")
            }
            AbortReason::BatchDeadline => "run aborted: the batch deadline passed".to_string(),
            AbortReason::Budget { limit } => format!("run aborted: the budget {limit} is used up"),
        }
    }
}

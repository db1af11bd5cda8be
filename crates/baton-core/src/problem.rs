//! Errors as RFC 9457 problem details, with the Serverless Workflow standard error types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The standard error kinds of the Serverless Workflow spec (dsl-reference, "Standard Error Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Configuration,
    Validation,
    Expression,
    Authentication,
    Authorization,
    Timeout,
    Communication,
    Runtime,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Configuration,
        ErrorKind::Validation,
        ErrorKind::Expression,
        ErrorKind::Authentication,
        ErrorKind::Authorization,
        ErrorKind::Timeout,
        ErrorKind::Communication,
        ErrorKind::Runtime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "configuration",
            ErrorKind::Validation => "validation",
            ErrorKind::Expression => "expression",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Authorization => "authorization",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Communication => "communication",
            ErrorKind::Runtime => "runtime",
        }
    }

    /// The type URI the spec gives this kind.
    pub fn type_uri(self) -> String {
        format!(
            "https://serverlessworkflow.io/spec/1.0.0/errors/{}",
            self.name()
        )
    }

    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::Configuration | ErrorKind::Validation | ErrorKind::Expression => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Authorization => 403,
            ErrorKind::Timeout => 408,
            ErrorKind::Communication | ErrorKind::Runtime => 500,
        }
    }

    /// Recognises a standard type URI. The spec text writes them as
    /// `https://serverlessworkflow.io/spec/1.0.0/errors/<kind>` while the CTK (and many flows in
    /// the wild) write `https://serverlessworkflow.io/dsl/errors/types/<kind>`; both name the same
    /// kind, so filters written either way catch the same errors (see README, "Conformance").
    pub fn from_type_uri(uri: &str) -> Option<ErrorKind> {
        let rest = uri.strip_prefix("https://serverlessworkflow.io/")?;
        let kind = if let Some(k) = rest.strip_prefix("dsl/errors/types/") {
            k
        } else {
            let after_spec = rest.strip_prefix("spec/")?;
            let (_version, k) = after_spec.split_once("/errors/")?;
            k
        };
        ErrorKind::ALL.into_iter().find(|e| e.name() == kind)
    }
}

/// A workflow error: RFC 9457 problem details where `instance` is a JSON Pointer to the task.
/// Baton's own problem types, for what the standard kinds cannot tell apart. Flows catch them
/// with `errors: with: type: <uri>`.
pub mod baton_types {
    /// A provider answered, but its body broke the operation's contract: never used as data.
    pub const CONTRACT: &str = "https://baton.dev/errors/contract";
    /// A provider's answer (or a fact) is older than the freshness bound accepted.
    pub const STALE: &str = "https://baton.dev/errors/stale";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    pub fn new(kind: ErrorKind, title: impl Into<String>) -> Problem {
        Problem {
            type_: kind.type_uri(),
            status: kind.default_status(),
            title: Some(title.into()),
            detail: None,
            instance: None,
        }
    }

    /// A problem of a type outside the standard kinds (see [`baton_types`]).
    pub fn of_type(type_uri: &str, status: u16, title: impl Into<String>) -> Problem {
        Problem {
            type_: type_uri.to_string(),
            status,
            title: Some(title.into()),
            detail: None,
            instance: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Problem {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    /// Sets `instance` unless an inner task already did: the innermost task that raised an error
    /// is the one the pointer names.
    pub fn at(mut self, instance: &str) -> Problem {
        if self.instance.is_none() {
            self.instance = Some(instance.to_string());
        }
        self
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        ErrorKind::from_type_uri(&self.type_)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.title.as_deref().unwrap_or("error"),
            self.status
        )?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(i) = &self.instance {
            write!(f, " at {i}")?;
        }
        write!(f, " [{}]", self.type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_standard_types_are_recognised() {
        assert_eq!(
            ErrorKind::from_type_uri(
                "https://serverlessworkflow.io/dsl/errors/types/communication"
            ),
            Some(ErrorKind::Communication)
        );
        assert_eq!(
            ErrorKind::from_type_uri("https://serverlessworkflow.io/spec/1.0.0/errors/timeout"),
            Some(ErrorKind::Timeout)
        );
        assert_eq!(
            ErrorKind::from_type_uri("https://example.com/errors/timeout"),
            None
        );
    }
}

//! Who is acting: the identity every mutating call records, with the roles the API checks and
//! the groups approvals are assigned to.

use serde::{Deserialize, Serialize};

/// A role of an API token. Each role includes the ones before it, except that `approver` and
/// `operator` are separate duties: an approver need not be able to start or cancel instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything (flows, instances, approvals, metrics); changes nothing.
    Viewer,
    /// Starts, signals, suspends, resumes and cancels instances; registers flows; sends events.
    Operator,
    /// Approves, rejects and overrides.
    Approver,
    /// Everything, including answering approvals assigned to others.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "approver" => Role::Approver,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// An authenticated caller (a person or a system).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Actor {
    /// Whether the actor may act as `role`: admins may do everything, and every role may view.
    pub fn can(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || role == Role::Viewer || self.roles.contains(&role)
    }

    /// Baton itself (timers, default answers, escalations).
    pub fn system() -> Actor {
        Actor {
            name: "baton".into(),
            roles: vec![Role::Admin],
            groups: Vec::new(),
        }
    }
}

//! Approvals: human tasks (`call: approval`) with assignees, a window, a due policy, escalation
//! and an inbox. (Being built; see the issue on the service.)

//! Triggers: rules that start or signal instances from inbound events, with dedupe, debounce
//! and a quarantine for events that cannot be processed. (Being built; see the issue on the
//! service.)

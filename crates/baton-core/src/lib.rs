//! The sans-IO core: a flow's instance as a state machine that takes effect outcomes and returns
//! journal entries and effects to perform. No IO, no clock, no threads (see ARCHITECTURE.md).

pub mod backoff;
mod complete;
pub mod effect;
pub mod functions;
pub mod http;
mod interp;
pub mod journal;
pub mod listen;
mod machine;
pub mod problem;
pub mod program;
mod saga;
pub mod time;

pub use complete::{DEADLINE_KEY_MARK, check_flow, extension_diagnostics, is_deadline_key};
pub use effect::{EffectCall, EffectRequest, HttpAuth, HttpOutput, HttpRequest, idempotency_key};
pub use functions::{
    BUILTIN_FUNCTIONS, BuiltinFunction, builtin_function, builtin_function_names,
    is_waiting_function,
};
pub use interp::{TaskEvent, TaskPhase};
pub use journal::{EffectKey, FlowRef, InstanceId, JournalEntry, Outcome, Status};
pub use machine::{Advance, Fit, Instance, Rebuilt, RecoverError, ReplayObserver, Step};
pub use problem::{ErrorKind, Problem, baton_types};
pub use program::{BASE_VARS, Env, FlowResolver, InputError, Limits, NoFlows, Program, flow_hash};

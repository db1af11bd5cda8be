//! Inbound CloudEvents: validation and the wake-up of listening instances. Events themselves live
//! in the store (durable, deduplicated by `source` + `id`); whoever stores one (the kernel's
//! `publish_event`, the trigger engine's derived copies) tells the bus.

use serde_json::Value;
use tokio::sync::Notify;

/// The CloudEvents extension attribute naming the one instance an event is for (a signal).
pub const SIGNAL_TARGET: &str = "batoninstance";

/// Wakes the listeners of one runtime when an event has been stored.
#[derive(Default)]
pub struct EventBus {
    arrived: Notify,
}

impl EventBus {
    /// Tells every current listener that an event is in the store.
    pub fn notify(&self) {
        self.arrived.notify_waiters();
    }
    /// Resolves at the next [`EventBus::notify`] after it is created.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.arrived.notified()
    }
}

/// Size limit of one event (structured JSON).
pub const EVENT_BYTES_MAX: usize = 256 * 1024;

/// Checks the CloudEvents 1.0 required attributes of a structured event.
pub fn validate_cloud_event(event: &Value) -> Result<(), String> {
    let obj = event.as_object().ok_or("an event must be a JSON object")?;
    for k in ["specversion", "id", "source", "type"] {
        match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(format!("`{k}` must be a non-empty string")),
            None => return Err(format!("missing required attribute `{k}`")),
        }
    }
    if obj.get("specversion").and_then(Value::as_str) != Some("1.0") {
        return Err("`specversion` must be \"1.0\"".into());
    }
    if event.to_string().len() > EVENT_BYTES_MAX {
        return Err(format!("the event is larger than {EVENT_BYTES_MAX} bytes"));
    }
    Ok(())
}

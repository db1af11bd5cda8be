//! Baton's decision engine: DMN models (decision tables, literal expressions,
//! contexts, invocations, business knowledge models, decision services,
//! decision requirement graphs) evaluated with FEEL, with an explanation
//! trace, and a runner for the DMN TCK conformance suite.
//!
//! ```
//! use baton_decision::DecisionModel;
//! # let xml = r#"<definitions xmlns="https://www.omg.org/spec/DMN/20230324/MODEL/" name="m" namespace="n">
//! #   <decision id="d" name="Greeting"><literalExpression><text>"Hello " + Name</text></literalExpression></decision>
//! # </definitions>"#;
//! let model = DecisionModel::parse(xml).unwrap();
//! let result = model.evaluate("Greeting", &serde_json::json!({"Name": "Ada"}), false).unwrap();
//! assert_eq!(result.output, serde_json::json!("Hello Ada"));
//! ```

pub mod annotations;
pub mod dmn;
pub mod feel;
pub mod json;
pub mod tck;
pub mod trace;

pub use annotations::rule_annotations;
pub use dmn::{DecisionModel, DmnError, EvalOptions, Evaluation};
pub use tck::{TckReport, run_conformance_cli, run_tck};
pub use trace::Trace;

//! A minimal Gherkin parser: enough of the language for the Serverless Workflow CTK and our own
//! feature files (`Feature`, `Background`, `Scenario`, `Given`/`When`/`Then`/`And`/`But` steps,
//! `"""` doc strings with an optional media type, `#` comments, free description lines).
//!
//! Tags, `Scenario Outline`/`Examples`, data tables and rules are not used by those files; they
//! are refused with a diagnostic rather than misread.

use std::fmt;

/// A parsed `.feature` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    /// Steps run before every scenario.
    pub background: Vec<Step>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub line: usize,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `Given`, `When`, `Then`, `And`, `But` or `*`.
    pub keyword: String,
    /// The text after the keyword.
    pub text: String,
    pub line: usize,
    pub doc: Option<DocString>,
}

/// A `"""` block, its lines' common indentation (that of the opening delimiter) removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DocString {
    /// The media type after the opening delimiter (`yaml` in `"""yaml`), if any.
    pub media_type: Option<String>,
    pub content: String,
}

/// Why a feature file could not be parsed, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const STEP_KEYWORDS: [&str; 5] = ["Given", "When", "Then", "And", "But"];

/// Where the parser is: steps go to the background or to the last scenario.
enum Section {
    Preamble,
    Feature,
    Background,
    Scenario,
}

/// Parses one feature file. Only the first error is reported: after a broken doc string the rest
/// of the file cannot be trusted.
pub fn parse_feature(text: &str) -> Result<Feature, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut feature = Feature {
        name: String::new(),
        background: Vec::new(),
        scenarios: Vec::new(),
    };
    let mut section = Section::Preamble;
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let trimmed = lines[i].trim();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = keyword_line(trimmed, "Feature") {
            if !matches!(section, Section::Preamble) {
                return Err(err(line_no, "a second `Feature:` in one file"));
            }
            feature.name = name.to_string();
            section = Section::Feature;
            continue;
        }
        if keyword_line(trimmed, "Background").is_some() {
            require_feature(&section, line_no)?;
            section = Section::Background;
            continue;
        }
        if let Some(name) =
            keyword_line(trimmed, "Scenario").or_else(|| keyword_line(trimmed, "Example"))
        {
            require_feature(&section, line_no)?;
            feature.scenarios.push(Scenario {
                name: name.to_string(),
                line: line_no,
                steps: Vec::new(),
            });
            section = Section::Scenario;
            continue;
        }
        for unsupported in [
            "Scenario Outline",
            "Scenario Template",
            "Examples",
            "Scenarios",
            "Rule",
        ] {
            if keyword_line(trimmed, unsupported).is_some() {
                return Err(err(
                    line_no,
                    &format!("`{unsupported}:` is not supported by this runner"),
                ));
            }
        }
        if trimmed.starts_with('@') {
            return Err(err(line_no, "tags are not supported by this runner"));
        }
        if let Some((keyword, rest)) = step_line(trimmed) {
            let mut step = Step {
                keyword: keyword.to_string(),
                text: rest.trim().to_string(),
                line: line_no,
                doc: None,
            };
            if let Some((doc, next)) = doc_string(&lines, i)? {
                step.doc = Some(doc);
                i = next;
            }
            match section {
                Section::Background => feature.background.push(step),
                Section::Scenario => {
                    if let Some(s) = feature.scenarios.last_mut() {
                        s.steps.push(step);
                    }
                }
                Section::Preamble | Section::Feature => {
                    return Err(err(
                        line_no,
                        "a step outside of a `Scenario:` or `Background:`",
                    ));
                }
            }
            continue;
        }
        if trimmed.starts_with("\"\"\"") || trimmed.starts_with("```") {
            return Err(err(line_no, "a doc string that does not follow a step"));
        }
        if trimmed.starts_with('|') {
            return Err(err(line_no, "data tables are not supported by this runner"));
        }
        match section {
            // Free text under `Feature:` is its description ("As an implementer ...").
            Section::Feature => {}
            Section::Preamble => {
                return Err(err(
                    line_no,
                    &format!("expected `Feature:`, found `{trimmed}`"),
                ));
            }
            Section::Background | Section::Scenario => {
                return Err(err(
                    line_no,
                    &format!("expected a step (Given/When/Then/And/But), found `{trimmed}`"),
                ));
            }
        }
    }
    if matches!(section, Section::Preamble) {
        return Err(err(1, "no `Feature:` in this file"));
    }
    Ok(feature)
}

fn err(line: usize, message: &str) -> ParseError {
    ParseError {
        line,
        message: message.to_string(),
    }
}

fn require_feature(section: &Section, line: usize) -> Result<(), ParseError> {
    match section {
        Section::Preamble => Err(err(line, "a section before `Feature:`")),
        _ => Ok(()),
    }
}

/// `Keyword: text` -> `text`.
fn keyword_line<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    line.strip_prefix(keyword)?.strip_prefix(':').map(str::trim)
}

fn step_line(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("* ") {
        return Some(("*", rest));
    }
    STEP_KEYWORDS.iter().find_map(|k| {
        let rest = line.strip_prefix(k)?;
        rest.starts_with(char::is_whitespace).then_some((*k, rest))
    })
}

/// Reads a doc string starting at line index `start` (after blank lines), if one starts there.
/// Returns it and the index of the line after its closing delimiter.
fn doc_string(lines: &[&str], start: usize) -> Result<Option<(DocString, usize)>, ParseError> {
    let mut i = start;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let Some(open) = lines.get(i) else {
        return Ok(None);
    };
    let trimmed = open.trim_start();
    let delimiter = if trimmed.starts_with("\"\"\"") {
        "\"\"\""
    } else if trimmed.starts_with("```") {
        "```"
    } else {
        return Ok(None);
    };
    let indent = open.len() - trimmed.len();
    let media = trimmed[delimiter.len()..].trim();
    let media_type = (!media.is_empty()).then(|| media.to_string());
    let mut content = Vec::new();
    let mut j = i + 1;
    while j < lines.len() {
        let line = lines[j];
        if line.trim() == delimiter {
            let content = content.join("\n");
            return Ok(Some((
                DocString {
                    media_type,
                    content,
                },
                j + 1,
            )));
        }
        content.push(strip_indent(line, indent));
        j += 1;
    }
    Err(err(
        i + 1,
        &format!("the doc string opened here is not closed with {delimiter}"),
    ))
}

/// Removes up to `indent` leading whitespace characters, as Gherkin does for doc string lines,
/// and unescapes `\"\"\"`.
fn strip_indent(line: &str, indent: usize) -> String {
    let mut cut = line.len();
    for (n, (idx, c)) in line.char_indices().enumerate() {
        if n >= indent || !(c == ' ' || c == '\t') {
            cut = idx;
            break;
        }
    }
    line[cut..].replace("\\\"\\\"\\\"", "\"\"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"Feature: Things
  As a tester
  I want things

  # a comment
  Scenario: First
    Given a workflow with definition:
    """yaml
    document:
      name: x
    """
    When the workflow is executed
    Then the workflow should complete

  Scenario: Second
    Given the workflow input is:
      """yaml
      a: 1
        b: 2
      """
    Then x should run first"#;

    #[test]
    fn parses_scenarios_steps_and_doc_strings() {
        let f = parse_feature(SAMPLE).expect("parses");
        assert_eq!(f.name, "Things");
        assert_eq!(f.scenarios.len(), 2);
        let first = &f.scenarios[0];
        assert_eq!(first.name, "First");
        assert_eq!(first.steps.len(), 3);
        assert_eq!(first.steps[0].text, "a workflow with definition:");
        let doc = first.steps[0].doc.as_ref().expect("doc");
        assert_eq!(doc.media_type.as_deref(), Some("yaml"));
        assert_eq!(doc.content, "document:\n  name: x");
        assert_eq!(first.steps[1].keyword, "When");
        let second = &f.scenarios[1];
        assert_eq!(
            second.steps[0].doc.as_ref().expect("doc").content,
            "a: 1\n  b: 2"
        );
        assert_eq!(second.steps[1].text, "x should run first");
    }

    #[test]
    fn under_indented_doc_lines_lose_only_their_whitespace() {
        let text = "Feature: F\n Scenario: S\n  Given x:\n    \"\"\"\n    a:\n  b\n    \"\"\"\n";
        let f = parse_feature(text).expect("parses");
        assert_eq!(
            f.scenarios[0].steps[0].doc.as_ref().expect("doc").content,
            "a:\nb"
        );
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse_feature("Feature: F\n  Scenario: S\n    Given x:\n    \"\"\"\n    a: 1\n")
            .unwrap_err();
        assert_eq!(e.line, 4);
        let e = parse_feature("Scenario: S\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_feature("Feature: F\n  Scenario: S\n    Given x\n    what is this\n")
            .unwrap_err();
        assert_eq!(e.line, 4);
        let e = parse_feature("Feature: F\n  Scenario Outline: S\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}

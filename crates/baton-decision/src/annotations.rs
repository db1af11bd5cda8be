//! Rule annotations: what a table's author wrote beside each rule (`<description>` or DMN 1.3's
//! `<annotationEntry>` cells). Evaluation does not need them, so the model does not keep them;
//! decision records read them from the source to say, in the author's words, why a rule fired.

use std::collections::BTreeMap;

/// The annotation of every rule that has one, by rule `id`. Cells of several annotation
/// columns are joined with `; `. A document that is not XML has none.
pub fn rule_annotations(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return out;
    };
    for rule in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "rule")
    {
        let Some(id) = rule.attribute("id") else {
            continue;
        };
        let mut parts: Vec<String> = Vec::new();
        for child in rule.children().filter(|c| c.is_element()) {
            let text = match child.tag_name().name() {
                "description" => child.text().map(str::to_string),
                "annotationEntry" => child
                    .children()
                    .find(|t| t.is_element() && t.tag_name().name() == "text")
                    .and_then(|t| t.text())
                    .map(str::to_string),
                _ => None,
            };
            if let Some(t) = text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
                parts.push(t);
            }
        }
        if !parts.is_empty() {
            out.insert(id.to_string(), parts.join("; "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_annotation_entries_are_read() {
        let xml = r#"<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/">
          <decision id="d"><decisionTable id="t">
            <rule id="r1"><description>short delay: keep the route</description>
              <inputEntry><text>-</text></inputEntry><outputEntry><text>1</text></outputEntry></rule>
            <rule id="r2"><inputEntry><text>-</text></inputEntry><outputEntry><text>2</text></outputEntry>
              <annotationEntry><text>gold customers first</text></annotationEntry>
              <annotationEntry><text>policy 4.2</text></annotationEntry></rule>
            <rule id="r3"><inputEntry><text>-</text></inputEntry><outputEntry><text>3</text></outputEntry></rule>
          </decisionTable></decision></definitions>"#;
        let a = rule_annotations(xml);
        assert_eq!(a["r1"], "short delay: keep the route");
        assert_eq!(a["r2"], "gold customers first; policy 4.2");
        assert!(!a.contains_key("r3"));
        assert!(rule_annotations("not xml <").is_empty());
    }
}

//! Topics made from a template: `sites/site-7/{output}/{key}`.

/// A part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Output,
    Key,
    Pipeline,
}

/// A checked topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicTemplate {
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Reads a template: text with `{output}` (the node output, e.g.
    /// `alerts` or `stats`), `{key}` (the record's key) and `{pipeline}`.
    /// Wildcards (`+`, `#`) are not topics one can publish to.
    pub(crate) fn parse(template: &str) -> Result<TopicTemplate, String> {
        if template.is_empty() {
            return Err("the topic is empty".into());
        }
        if template.contains(['+', '#', '\0']) {
            return Err(format!(
                "`{template}`: a topic to publish to has no wildcards (+, #)"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{template}`: a `{{` is not closed"))?;
            parts.push(match &rest[open + 1..open + close] {
                "output" => Part::Output,
                "key" => Part::Key,
                "pipeline" => Part::Pipeline,
                other => {
                    return Err(format!(
                        "`{template}`: {{{other}}} is not {{output}}, {{key}} or {{pipeline}}"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{template}`: a `}}` without its `{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic for one result, into `out` (cleared first). A wildcard
    /// character in a key or an output becomes `_`.
    pub(crate) fn render(&self, pipeline: &str, output: &str, key: &str, out: &mut String) {
        out.clear();
        let push = |value: &str, out: &mut String| {
            for c in value.chars() {
                out.push(if matches!(c, '+' | '#' | '\0') {
                    '_'
                } else {
                    c
                });
            }
        };
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Output => push(output, out),
                Part::Key => push(key, out),
                Part::Pipeline => push(pipeline, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_wildcards_kept_out() {
        let t = TopicTemplate::parse("sites/{pipeline}/{output}/{key}").unwrap();
        let mut topic = String::new();
        t.render("site-7", "alerts.cleared", "ups+1#", &mut topic);
        assert_eq!(topic, "sites/site-7/alerts.cleared/ups_1_");
        assert!(TopicTemplate::parse("a/+/b").is_err());
        assert!(TopicTemplate::parse("a/{nope}").is_err());
        assert!(TopicTemplate::parse("a/{key").is_err());
        assert!(TopicTemplate::parse("").is_err());
        let plain = TopicTemplate::parse("results").unwrap();
        plain.render("p", "o", "k", &mut topic);
        assert_eq!(topic, "results");
    }
}

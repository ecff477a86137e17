//! Topics made from a template: `sites/site-7/{output}/{key}` (MQTT),
//! `site-7.{output}` (Kafka).

/// A part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Output,
    Key,
    Pipeline,
}

/// A checked topic template.
#[derive(Debug, Clone)]
pub struct TopicTemplate {
    parts: Vec<Part>,
    /// Which characters a topic may hold.
    legal: fn(char) -> bool,
}

impl TopicTemplate {
    /// Reads a template: text with `{output}` (the node output, e.g.
    /// `alerts` or `stats`), `{key}` (the record's key) and `{pipeline}`.
    /// `legal` says which characters a topic of the protocol may hold: the
    /// template's own text must be legal, and an illegal character of a
    /// value filled in becomes `_`.
    pub fn parse(template: &str, legal: fn(char) -> bool) -> Result<TopicTemplate, String> {
        if template.is_empty() {
            return Err("the topic is empty".into());
        }
        let text_outside = template
            .split('{')
            .enumerate()
            .flat_map(|(i, piece)| {
                // After a `{`, the placeholder's name runs to its `}`.
                let text = if i == 0 {
                    piece
                } else {
                    piece.split_once('}').map_or("", |(_, t)| t)
                };
                text.chars()
            })
            .find(|c| !legal(*c));
        if let Some(c) = text_outside {
            return Err(format!("`{template}`: `{c}` cannot be part of a topic"));
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
        Ok(TopicTemplate { parts, legal })
    }

    /// Whether the template uses the record's key.
    pub fn uses_key(&self) -> bool {
        self.parts.contains(&Part::Key)
    }

    /// The topic for one result, into `out` (cleared first). A character
    /// of a key, an output or the pipeline that cannot be in a topic becomes `_`.
    pub fn render(&self, pipeline: &str, output: &str, key: &str, out: &mut String) {
        out.clear();
        let legal = self.legal;
        let push = |value: &str, out: &mut String| {
            for c in value.chars() {
                out.push(if legal(c) { c } else { '_' });
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

/// A result as a broker message: its topic and its JSON payload (the
/// result id, output, key, time and fields), in buffers reused from one
/// result to the next.
#[derive(Debug, Default)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// Renders `out` of `pipeline` with `template`; the reason if its
    /// payload cannot be written.
    pub fn render(
        &mut self,
        template: &TopicTemplate,
        pipeline: &str,
        out: &crate::OwnedOut,
    ) -> Result<(), String> {
        template.render(pipeline, &out.output, &out.record.key, &mut self.topic);
        eddy_codec::write_json_message(
            &mut self.payload,
            Some(&out.output),
            Some(&out.id),
            &out.record,
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt(c: char) -> bool {
        !matches!(c, '+' | '#' | '\0')
    }

    fn kafka(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    }

    #[test]
    fn placeholders_are_filled_and_illegal_characters_kept_out() {
        let t = TopicTemplate::parse("sites/{pipeline}/{output}/{key}", mqtt).unwrap();
        assert!(t.uses_key());
        let mut topic = String::new();
        t.render("site-7", "alerts.cleared", "ups+1#", &mut topic);
        assert_eq!(topic, "sites/site-7/alerts.cleared/ups_1_");
        assert!(TopicTemplate::parse("a/+/b", mqtt).is_err());
        assert!(TopicTemplate::parse("a/{nope}", mqtt).is_err());
        assert!(TopicTemplate::parse("a/{key", mqtt).is_err());
        assert!(TopicTemplate::parse("", mqtt).is_err());
        let plain = TopicTemplate::parse("results", mqtt).unwrap();
        assert!(!plain.uses_key());
        plain.render("p", "o", "k", &mut topic);
        assert_eq!(topic, "results");
        let k = TopicTemplate::parse("site-7.{output}", kafka).unwrap();
        k.render("p", "alerts/cleared", "k", &mut topic);
        assert_eq!(topic, "site-7.alerts_cleared");
        assert!(TopicTemplate::parse("site 7.{output}", kafka).is_err());
        assert!(TopicTemplate::parse("sites/{output}", kafka).is_err());
    }
}

//! Topic levels to a key and fields, in the manner of Telegraf's
//! `topic_parsing`: `site/+site/rack/+rack/+sensor`.

/// One level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Must be this text.
    Text(String),
    /// Any one level, kept under this name.
    Named(String),
    /// Any one level, not kept.
    Any,
    /// Any number of levels (`#`, last).
    Rest,
}

/// A checked pattern and which named levels make the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicParsing {
    levels: Vec<Level>,
    key: Vec<String>,
}

/// What a topic gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The record key: the named levels of `key` joined by `/`.
    pub(crate) key: Option<String>,
    /// The other named levels, as string fields.
    pub(crate) fields: Vec<(String, String)>,
}

impl TopicParsing {
    /// Reads `pattern` (levels of text, `+name`, `+` and a final `#`) and
    /// the names of the levels that make the key (none: the key comes from
    /// the payload or is the topic).
    pub(crate) fn new(pattern: &str, key: &[String]) -> Result<TopicParsing, String> {
        let mut levels = Vec::new();
        let parts: Vec<&str> = pattern.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            levels.push(match *part {
                "#" if i + 1 == parts.len() => Level::Rest,
                "#" => return Err(format!("`{pattern}`: # is the last level only")),
                "+" => Level::Any,
                p if p.starts_with('+') => {
                    let name = &p[1..];
                    if levels.iter().any(|l| *l == Level::Named(name.to_owned())) {
                        return Err(format!("`{pattern}`: level `{name}` is named twice"));
                    }
                    Level::Named(name.to_owned())
                }
                p if p.contains(['+', '#']) => {
                    return Err(format!("`{pattern}`: `{p}` mixes a wildcard with text"));
                }
                p => Level::Text(p.to_owned()),
            });
        }
        for name in key {
            if !levels.contains(&Level::Named(name.clone())) {
                return Err(format!(
                    "key names `{name}`, which `{pattern}` does not name (+{name})"
                ));
            }
        }
        Ok(TopicParsing {
            levels,
            key: key.to_vec(),
        })
    }

    /// The key and fields of `topic`, or `None` when it does not match.
    pub(crate) fn parse(&self, topic: &str) -> Option<Parsed> {
        let parts: Vec<&str> = topic.split('/').collect();
        let mut named: Vec<(&str, &str)> = Vec::new();
        let mut i = 0;
        for level in &self.levels {
            match level {
                Level::Rest => {
                    i = parts.len();
                    break;
                }
                Level::Text(t) => {
                    if parts.get(i) != Some(&t.as_str()) {
                        return None;
                    }
                }
                Level::Any => {
                    parts.get(i)?;
                }
                Level::Named(name) => named.push((name, parts.get(i)?)),
            }
            i += 1;
        }
        if i != parts.len() {
            return None;
        }
        let key = (!self.key.is_empty()).then(|| {
            self.key
                .iter()
                .filter_map(|k| named.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
                .collect::<Vec<_>>()
                .join("/")
        });
        let fields = named
            .iter()
            .filter(|(n, _)| !self.key.iter().any(|k| k == n))
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Some(Parsed { key, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_levels_make_the_key_and_the_rest_are_fields() {
        let p = TopicParsing::new(
            "site/+site/rack/+rack/+sensor",
            &["site".into(), "rack".into()],
        )
        .unwrap();
        let parsed = p.parse("site/s7/rack/r3/temp").unwrap();
        assert_eq!(parsed.key.as_deref(), Some("s7/r3"));
        assert_eq!(
            parsed.fields,
            vec![("sensor".to_owned(), "temp".to_owned())]
        );
        assert!(p.parse("site/s7/rack/r3").is_none());
        assert!(p.parse("site/s7/row/r3/temp").is_none());
        assert!(p.parse("site/s7/rack/r3/temp/extra").is_none());
        let rest = TopicParsing::new("dc/+dc/#", &[]).unwrap();
        let parsed = rest.parse("dc/fra/a/b").unwrap();
        assert_eq!(parsed.key, None);
        assert_eq!(parsed.fields, vec![("dc".to_owned(), "fra".to_owned())]);
        assert!(TopicParsing::new("a/#/b", &[]).is_err());
        assert!(TopicParsing::new("a/+x/+x", &[]).is_err());
        assert!(TopicParsing::new("a/+x", &["y".into()]).is_err());
        assert!(TopicParsing::new("a/b+", &[]).is_err());
    }
}

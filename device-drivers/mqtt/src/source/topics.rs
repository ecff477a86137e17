//! Topic levels to a key and fields, in the manner of Telegraf's
//! `topic_parsing`: `site/+site/rack/+rack/+sensor`.

use smallvec::SmallVec;

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

/// What a topic gives, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed<'t> {
    /// The record key: the named levels of `key` joined by `/`.
    pub(crate) key: Option<String>,
    /// The other named levels, as string fields: (name, level).
    pub(crate) fields: Vec<(&'t str, &'t str)>,
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
    /// Each message is parsed, so this allocates only the key and, when
    /// named levels are left over, the fields' list.
    pub(crate) fn parse<'t>(&'t self, topic: &'t str) -> Option<Parsed<'t>> {
        let mut parts = topic.split('/');
        let mut named: SmallVec<[(&str, &str); 8]> = SmallVec::new();
        let mut rest = false;
        for level in &self.levels {
            match level {
                Level::Rest => {
                    rest = true;
                    break;
                }
                Level::Text(t) => {
                    if parts.next()? != t {
                        return None;
                    }
                }
                Level::Any => {
                    parts.next()?;
                }
                Level::Named(name) => named.push((name.as_str(), parts.next()?)),
            }
        }
        if !rest && parts.next().is_some() {
            return None;
        }
        let key = (!self.key.is_empty()).then(|| {
            let mut key = String::with_capacity(topic.len());
            let parts = self
                .key
                .iter()
                .filter_map(|k| named.iter().find(|(n, _)| n == k).map(|(_, part)| *part));
            for (i, part) in parts.enumerate() {
                if i > 0 {
                    key.push('/');
                }
                key.push_str(part);
            }
            key
        });
        let fields = named
            .into_iter()
            .filter(|(n, _)| !self.key.iter().any(|k| k == n))
            .collect();
        Some(Parsed { key, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A topic's key and other named levels.
    type ByHand = (Option<String>, Vec<(String, String)>);

    /// Level by level, as a reader of the pattern would: `None` when the
    /// topic does not match; else the key (named levels in `key` order)
    /// and the other named levels.
    fn by_hand(pattern: &str, key: &[&str], topic: &str) -> Option<ByHand> {
        let pattern: Vec<&str> = pattern.split('/').collect();
        let topic: Vec<&str> = topic.split('/').collect();
        let rest = pattern.last() == Some(&"#");
        let fixed = if rest {
            pattern.len() - 1
        } else {
            pattern.len()
        };
        if topic.len() < fixed || (!rest && topic.len() != fixed) {
            return None;
        }
        let mut named = Vec::new();
        for (p, t) in pattern[..fixed].iter().zip(&topic) {
            match p.strip_prefix('+') {
                Some("") => {}
                Some(name) => named.push((name.to_owned(), (*t).to_owned())),
                None if p == t => {}
                None => return None,
            }
        }
        let key_text = (!key.is_empty()).then(|| {
            key.iter()
                .filter_map(|k| named.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .collect::<Vec<_>>()
                .join("/")
        });
        named.retain(|(n, _)| !key.contains(&n.as_str()));
        Some((key_text, named))
    }

    #[test]
    fn topics_parse_as_read_level_by_level() {
        let patterns: [(&str, &[&str]); 5] = [
            ("site/+site/sensor/+sensor", &["site", "sensor"]),
            ("site/+site/sensor/+sensor", &["sensor"]),
            ("+a/+/b/+c", &["c", "a"]),
            ("dc/+dc/#", &[]),
            ("x/+y/#", &["y"]),
        ];
        let levels = ["site", "sensor", "s1", "b", "x", "dc", ""];
        // Every topic of one to five levels from these words.
        let mut topics = vec![String::new()];
        for _ in 0..5 {
            topics = topics
                .iter()
                .flat_map(|t| {
                    levels.iter().map(move |l| {
                        if t.is_empty() {
                            (*l).to_owned()
                        } else {
                            format!("{t}/{l}")
                        }
                    })
                })
                .chain(topics.iter().cloned())
                .collect();
            topics.sort();
            topics.dedup();
        }
        let mut matched = 0;
        for (pattern, key) in patterns {
            let keys: Vec<String> = key.iter().map(|k| (*k).to_owned()).collect();
            let parsing = TopicParsing::new(pattern, &keys).unwrap();
            for topic in &topics {
                let parsed = parsing.parse(topic).map(|p| {
                    let fields = p
                        .fields
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect();
                    (p.key, fields)
                });
                assert_eq!(parsed, by_hand(pattern, key, topic), "{pattern} on {topic}");
                matched += usize::from(parsed.is_some());
            }
        }
        assert!(matched > 100, "only {matched} topics matched");
    }

    #[test]
    fn named_levels_make_the_key_and_the_rest_are_fields() {
        let p = TopicParsing::new(
            "site/+site/rack/+rack/+sensor",
            &["site".into(), "rack".into()],
        )
        .unwrap();
        let parsed = p.parse("site/s7/rack/r3/temp").unwrap();
        assert_eq!(parsed.key.as_deref(), Some("s7/r3"));
        assert_eq!(parsed.fields, vec![("sensor", "temp")]);
        assert!(p.parse("site/s7/rack/r3").is_none());
        assert!(p.parse("site/s7/row/r3/temp").is_none());
        assert!(p.parse("site/s7/rack/r3/temp/extra").is_none());
        let rest = TopicParsing::new("dc/+dc/#", &[]).unwrap();
        let parsed = rest.parse("dc/fra/a/b").unwrap();
        assert_eq!(parsed.key, None);
        assert_eq!(parsed.fields, vec![("dc", "fra")]);
        assert!(TopicParsing::new("a/#/b", &[]).is_err());
        assert!(TopicParsing::new("a/+x/+x", &[]).is_err());
        assert!(TopicParsing::new("a/+x", &["y".into()]).is_err());
        assert!(TopicParsing::new("a/b+", &[]).is_err());
    }
}

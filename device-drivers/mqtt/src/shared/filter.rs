//! MQTT topic filters (MQTT 5 §4.7): `+` matches one level, `#` the
//! rest (the parent level too), and a filter that starts with a wildcard
//! does not match a topic that starts with `$` (`$SYS/…`, `$aws/…`), which
//! a filter naming the `$` level does.

/// Whether `topic` matches `filter` (a shared subscription's
/// `$share/GROUP/` prefix set aside).
pub(crate) fn matches(topic: &str, filter: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_the_standard_says() {
        for (topic, filter, want) in [
            ("site/s1/rack/r0/temp", "site/+/rack/+/+", true),
            ("site/s1/rack/r0", "site/+/rack/+/+", false),
            ("site/s1/rack/r0/temp/x", "site/+/rack/+/+", false),
            ("site/s1/rack", "site/#", true),
            ("site", "site/#", true),
            ("sites", "site/#", false),
            ("a//b", "a/+/b", true),
            (
                "$aws/things/t/shadow/get/accepted",
                "$aws/things/t/shadow/get/+",
                true,
            ),
            ("$aws/things/t/shadow/get/accepted", "#", false),
            ("$SYS/broker/load", "+/broker/load", false),
            ("$SYS/broker/load", "$SYS/#", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("site/s1/temp", "$share/eddy/site/#", true),
            ("other/s1", "$share/eddy/site/#", false),
        ] {
            assert_eq!(matches(topic, filter), want, "{topic} ~ {filter}");
        }
    }
}

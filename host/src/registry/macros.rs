//! The macro behind the registry: from one list of settings types, the kind
//! tables and the functions that deserialize a kind's sub-table by its
//! name, keeping `deny_unknown_fields` and the file positions of its keys.

/// Expands the registry's lists into `SOURCE_KINDS`, `SINK_KINDS`,
/// `next_source` and `next_sink`.
macro_rules! kinds {
    (
        sources: [$($(#[$source_meta:meta])* $source:ty,)*]
        sinks: [$($(#[$sink_meta:meta])* $sink:ty,)*]
    ) => {
        /// Every source kind this build has.
        pub const SOURCE_KINDS: &[KindInfo] = &[
            $($(#[$source_meta])* KindInfo::of::<$source>(stringify!($source)),)*
        ];

        /// Every sink kind this build has.
        pub const SINK_KINDS: &[KindInfo] = &[
            $($(#[$sink_meta])* KindInfo::of::<$sink>(stringify!($sink)),)*
        ];

        /// Deserializes the value of the map entry whose key is the source
        /// kind `name` into its settings type; `None` when no kind has that name.
        pub(crate) fn next_source<'de, A: serde::de::MapAccess<'de>>(
            name: &str,
            map: &mut A,
        ) -> Option<Result<crate::config::Component<dyn eddy_driver::SourceConfig>, A::Error>> {
            $(
                $(#[$source_meta])*
                if name == <$source as eddy_driver::Kind>::NAME {
                    return Some(
                        map.next_value::<eddy_driver::Spanned<$source>>().map(|s| {
                            let span = s.span();
                            let settings: std::sync::Arc<dyn eddy_driver::SourceConfig> =
                                std::sync::Arc::new(s.into_inner());
                            crate::config::Component::new(
                                <$source as eddy_driver::Kind>::NAME,
                                span,
                                settings,
                            )
                        }),
                    );
                }
            )*
            None
        }

        /// Deserializes the value of the map entry whose key is the sink
        /// kind `name` into its settings type; `None` when no kind has that name.
        pub(crate) fn next_sink<'de, A: serde::de::MapAccess<'de>>(
            name: &str,
            map: &mut A,
        ) -> Option<Result<crate::config::Component<dyn eddy_sink::SinkConfig>, A::Error>> {
            $(
                $(#[$sink_meta])*
                if name == <$sink as eddy_driver::Kind>::NAME {
                    return Some(
                        map.next_value::<eddy_driver::Spanned<$sink>>().map(|s| {
                            let span = s.span();
                            let settings: std::sync::Arc<dyn eddy_sink::SinkConfig> =
                                std::sync::Arc::new(s.into_inner());
                            crate::config::Component::new(
                                <$sink as eddy_driver::Kind>::NAME,
                                span,
                                settings,
                            )
                        }),
                    );
                }
            )*
            None
        }
    };
}

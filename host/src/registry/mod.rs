//! The one place that lists every source and sink kind this build has.
//!
//! A kind is a folder (a crate under `device-drivers/`, or a folder of
//! `host/src/sinks/` for the built-in sinks), a Cargo feature, and one line
//! below. The pipeline file's loader, `eddy check`, `eddy components`, the
//! error messages that list what is known, and the docs all read this list.

#[macro_use]
mod macros;

use eddy_driver::Kind;

/// A kind, as `eddy components` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindInfo {
    /// The name of its sub-table: `[sources.NAME.<name>]`, `[sinks.NAME.<name>]`.
    pub name: &'static str,
    /// What it is, in one line.
    pub about: &'static str,
    /// Its settings type, whose doc comments are the reference of its keys.
    pub settings: &'static str,
}

impl KindInfo {
    /// The name and line of a kind whose settings type is written `settings`.
    pub const fn of<K: Kind>(settings: &'static str) -> KindInfo {
        KindInfo {
            name: K::NAME,
            about: K::ABOUT,
            settings,
        }
    }
}

kinds! {
    sources: [
        #[cfg(feature = "sim")] eddy_driver_sim::SimConfig,
        #[cfg(feature = "file")] eddy_driver_file::FileSourceConfig,
        #[cfg(feature = "tcp")] eddy_driver_tcp::TcpSourceConfig,
        #[cfg(feature = "modbus")] eddy_driver_modbus::ModbusSourceConfig,
        #[cfg(feature = "i2c")] eddy_driver_i2c::I2cSourceConfig,
        #[cfg(feature = "ble")] eddy_driver_ble::BleSourceConfig,
        #[cfg(feature = "mqtt")] eddy_driver_mqtt::MqttSourceConfig,
        #[cfg(feature = "kafka")] eddy_driver_kafka::KafkaSourceConfig,
    ]
    sinks: [
        crate::sinks::stdout::StdoutConfig,
        crate::sinks::null::NullConfig,
        crate::sinks::dead_letter::DeadLetterConfig,
        crate::sinks::twin::TwinSinkConfig,
        #[cfg(feature = "file")] eddy_driver_file::FileSinkConfig,
        #[cfg(feature = "tcp")] eddy_driver_tcp::TcpSinkConfig,
        #[cfg(feature = "mqtt")] eddy_driver_mqtt::MqttSinkConfig,
        #[cfg(feature = "kafka")] eddy_driver_kafka::KafkaSinkConfig,
    ]
}

/// The kinds as a Markdown table, for the docs (`cargo xtask docs`).
pub fn markdown() -> String {
    let mut out = String::from("| table | what | settings |\n| --- | --- | --- |\n");
    for (section, kinds) in [("sources", SOURCE_KINDS), ("sinks", SINK_KINDS)] {
        for kind in kinds {
            out.push_str(&format!(
                "| `[{section}.NAME.{}]` | {} | `{}` |\n",
                kind.name,
                kind.about,
                short_path(kind.settings)
            ));
        }
    }
    out
}

/// A settings type's path as users of the crates see it.
fn short_path(path: &str) -> String {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    match path.strip_prefix("crate::") {
        Some(rest) => format!("eddy_host::{rest}"),
        None => path,
    }
}

/// The names of `kinds`, for messages: `` `sim`, `file` ``.
pub fn names(kinds: &[KindInfo]) -> String {
    kinds
        .iter()
        .map(|k| format!("`{}`", k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_kind_this_build_has() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        // With every component compiled in, the README's table is the registry's.
        if cfg!(all(feature = "sim", feature = "file", feature = "tcp")) {
            assert!(
                readme.contains(&markdown()),
                "README.md's table of kinds is out of date: run `cargo xtask docs`"
            );
        }
        for kind in SOURCE_KINDS.iter().chain(SINK_KINDS) {
            assert!(
                readme.contains(&format!(".{}]`", kind.name)),
                "{}",
                kind.name
            );
        }
    }

    #[test]
    fn kind_names_are_unique_within_sources_and_within_sinks() {
        for kinds in [SOURCE_KINDS, SINK_KINDS] {
            let mut names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), kinds.len());
        }
    }
}

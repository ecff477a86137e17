//! `eddy state …`: look into, move and reset checkpointed state on site.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::Failure;
use crate::checkpoint::compaction::{self, compaction_dirs};
use crate::checkpoint::{
    BlobDecoder, Damaged, Decoded, Loaded, Manifest, OperatorCheckpoint, PipelineStore, StateStore,
};
use crate::dataflow::snapshot::keyed_state;

/// The first bytes of an exported state file.
const EXPORT_MAGIC: &[u8; 8] = b"EDDYST01";

/// `eddy state …`
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List pipelines with state, or one pipeline's checkpoints and operators.
    Ls {
        /// A pipeline's name.
        pipeline: Option<String>,
    },
    /// Print an operator's keyed state as JSON lines.
    Get {
        /// The pipeline's name.
        pipeline: String,
        /// The operator's name.
        operator: String,
        /// Only this key.
        key: Option<String>,
    },
    /// Write a pipeline's newest checkpoint to a file, to import on another device.
    Export {
        /// The pipeline's name.
        pipeline: String,
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Make an exported checkpoint a pipeline's newest: its next run starts from it.
    Import {
        /// The pipeline's name.
        pipeline: String,
        /// A file `eddy state export` wrote.
        file: PathBuf,
    },
    /// Delete a pipeline's state, or only one operator's (it then starts empty).
    Clear {
        /// The pipeline's name.
        pipeline: String,
        /// Only this operator.
        operator: Option<String>,
    },
    /// Drop old checkpoints' leftovers and give the space back to the disk.
    Compact,
}

/// Runs a state command on the store in `dir`.
pub(crate) fn state(command: StateCommand, dir: &Path) -> Result<(), Failure> {
    if let StateCommand::Compact = command {
        return compact(dir);
    }
    // Importing onto a new device creates its store; nothing else does.
    if !dir.exists() && !matches!(command, StateCommand::Import { .. }) {
        return Err(Failure::usage(format!(
            "no state store at {} (set --state-dir or EDDY_STATE_DIR)",
            dir.display()
        )));
    }
    let store = StateStore::open(dir).map_err(Failure::runtime)?;
    match command {
        StateCommand::Ls { pipeline: None } => list_pipelines(&store),
        StateCommand::Ls {
            pipeline: Some(name),
        } => list_checkpoints(&pipeline(&store, &name)?),
        StateCommand::Get {
            pipeline: name,
            operator,
            key,
        } => get(&pipeline(&store, &name)?, &operator, key.as_deref()),
        StateCommand::Export {
            pipeline: name,
            output,
        } => export(&pipeline(&store, &name)?, &output),
        StateCommand::Import {
            pipeline: name,
            file,
        } => import(&store.pipeline(&name).map_err(Failure::runtime)?, &file),
        StateCommand::Clear {
            pipeline: name,
            operator,
        } => clear(&pipeline(&store, &name)?, operator.as_deref()),
        StateCommand::Compact => Ok(()),
    }
}

/// A pipeline that has checkpoints.
fn pipeline(store: &StateStore, name: &str) -> Result<PipelineStore, Failure> {
    if !store.pipelines().iter().any(|p| p == name) {
        return Err(Failure::usage(format!(
            "no state for pipeline `{name}`; pipelines with state: {}",
            or_none(&store.pipelines())
        )));
    }
    store.pipeline(name).map_err(Failure::runtime)
}

fn or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// The newest checkpoint that reads back whole.
fn newest(pipeline: &PipelineStore) -> Result<Loaded, Failure> {
    match pipeline.latest().map_err(Failure::runtime)? {
        (Some(loaded), _) => Ok(loaded),
        (None, damaged) => Err(none_reads_back(pipeline, &damaged)),
    }
}

/// The newest checkpoint that reads back whole, its operators' blobs
/// decoded by `decode` as they are read (none held whole).
fn newest_decoded<T>(
    pipeline: &PipelineStore,
    decode: &mut BlobDecoder<'_, T>,
) -> Result<Decoded<T>, Failure> {
    match pipeline.decode_latest(decode).map_err(Failure::runtime)? {
        (Some(decoded), _) => Ok(decoded),
        (None, damaged) => Err(none_reads_back(pipeline, &damaged)),
    }
}

/// Why no checkpoint could be used: there is none, or these were damaged.
fn none_reads_back(pipeline: &PipelineStore, damaged: &Damaged) -> Failure {
    if damaged.is_empty() {
        return Failure::usage(format!("pipeline `{}` has no checkpoint", pipeline.name()));
    }
    Failure::runtime(format!(
        "no checkpoint of pipeline `{}` reads back: {}",
        pipeline.name(),
        damaged
            .iter()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

fn list_pipelines(store: &StateStore) -> Result<(), Failure> {
    println!(
        "{:<24} {:>10} {:>12}  state",
        "PIPELINE", "CHECKPOINT", "AGE"
    );
    for name in store.pipelines() {
        let p = store.pipeline(&name).map_err(Failure::runtime)?;
        match p.latest().map_err(Failure::runtime)? {
            (Some(l), _) => println!(
                "{:<24} {:>10} {:>12}  {}",
                name,
                l.manifest.id,
                age(&l.manifest),
                if l.manifest.finished {
                    "finished"
                } else {
                    "running or stopped"
                }
            ),
            (None, _) => println!("{name:<24} {:>10} {:>12}  no usable checkpoint", "-", "-"),
        }
    }
    println!(
        "store: {} ({} bytes on disk)",
        store.path().display(),
        store.size_on_disk()
    );
    Ok(())
}

fn age(manifest: &Manifest) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        (manifest.age_ms().max(0) / 1000) as u64,
    ))
    .to_string()
}

fn list_checkpoints(pipeline: &PipelineStore) -> Result<(), Failure> {
    for id in pipeline.ids() {
        match pipeline.load(id) {
            Ok(l) => println!(
                "checkpoint {id}: {} old, journal up to {}{}",
                age(&l.manifest),
                l.manifest.journal_seq,
                if l.manifest.finished {
                    ", finished"
                } else {
                    ""
                }
            ),
            Err(reason) => println!("checkpoint {id}: damaged ({reason})"),
        }
    }
    let loaded = newest(pipeline)?;
    println!(
        "{:<20} {:<24} {:>6} {:>10} {:>8} {:>7} {:>10}",
        "OPERATOR", "PLUGIN", "STATE", "KEYS", "WINDOWS", "TIMERS", "BYTES"
    );
    for o in &loaded.manifest.operators {
        println!(
            "{:<20} {:<24} {:>6} {:>10} {:>8} {:>7} {:>10}",
            o.name,
            format!("{} {}", o.plugin, o.plugin_version),
            o.state_version,
            o.keys,
            o.windows,
            o.timers,
            o.len
        );
    }
    for s in &loaded.manifest.sources {
        println!(
            "source {}: {} records read{}{}",
            s.name,
            s.records_out,
            if s.position.is_some() {
                ", can rewind"
            } else {
                ""
            },
            if s.ended { ", ended" } else { "" }
        );
    }
    Ok(())
}

fn get(pipeline: &PipelineStore, operator: &str, key: Option<&str>) -> Result<(), Failure> {
    // Only the operator's keyed state is decoded, as it is read: not its
    // windows, nor the other operators' state.
    let mut decode = |_: &Manifest, saved: &OperatorCheckpoint, input: &mut dyn Read| {
        if saved.name != operator {
            return Ok(None);
        }
        keyed_state(input, saved.len).map(Some)
    };
    let mut decoded = newest_decoded(pipeline, &mut decode)?;
    let Some(i) = decoded
        .manifest
        .operators
        .iter()
        .position(|o| o.name == operator)
    else {
        let names: Vec<String> = decoded
            .manifest
            .operators
            .iter()
            .map(|o| o.name.clone())
            .collect();
        return Err(Failure::usage(format!(
            "checkpoint {} has no operator `{operator}`; it has: {}",
            decoded.manifest.id,
            or_none(&names)
        )));
    };
    let Some(keyed) = decoded.states[i].take() else {
        return Err(Failure::runtime(format!(
            "the state of operator `{operator}` was not read"
        )));
    };
    let mut out = std::io::stdout().lock();
    for (namespace, k, value) in keyed.entries() {
        if key.is_some_and(|key| key != k) {
            continue;
        }
        let line = serde_json::json!({
            "namespace": namespace,
            "key": k,
            "bytes": value.len(),
            "hex": value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        writeln!(out, "{line}").map_err(Failure::runtime)?;
    }
    Ok(())
}

/// An exported checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct Export {
    manifest: Manifest,
    blobs: Vec<Vec<u8>>,
}

fn export(pipeline: &PipelineStore, output: &Path) -> Result<(), Failure> {
    let Loaded { manifest, blobs } = newest(pipeline)?;
    let id = manifest.id;
    let mut bytes = EXPORT_MAGIC.to_vec();
    bytes.extend(postcard::to_allocvec(&Export { manifest, blobs }).map_err(Failure::runtime)?);
    std::fs::write(output, bytes)
        .map_err(|e| Failure::runtime(format!("{}: {e}", output.display())))?;
    println!(
        "exported checkpoint {id} of `{}` to {}",
        pipeline.name(),
        output.display()
    );
    Ok(())
}

fn import(pipeline: &PipelineStore, file: &Path) -> Result<(), Failure> {
    let bytes =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let Export {
        mut manifest,
        blobs,
    } = bytes
        .strip_prefix(EXPORT_MAGIC)
        .and_then(|body| postcard::from_bytes(body).ok())
        .ok_or_else(|| {
            Failure::usage(format!(
                "{}: not a state file `eddy state export` wrote",
                file.display()
            ))
        })?;
    for (operator, blob) in manifest.operators.iter().zip(&blobs) {
        if crc32fast::hash(blob) != operator.crc {
            return Err(Failure::usage(format!(
                "{}: the state of operator `{}` is damaged",
                file.display(),
                operator.name
            )));
        }
    }
    manifest.id = pipeline.ids().first().map_or(1, |id| id + 1);
    manifest.created_ms = crate::dataflow::wall_clock_ms();
    manifest.finished = false;
    // This device's journal and files are not the exporting device's.
    manifest.journal_seq = pipeline.journal_last();
    for sink in &mut manifest.sinks {
        sink.position = None;
    }
    manifest.dead_letter = None;
    pipeline
        .write(&manifest, &blobs)
        .map_err(Failure::runtime)?;
    println!(
        "imported {} as checkpoint {} of `{}`; its next run starts from it",
        file.display(),
        manifest.id,
        pipeline.name()
    );
    Ok(())
}

fn clear(pipeline: &PipelineStore, operator: Option<&str>) -> Result<(), Failure> {
    let Some(operator) = operator else {
        pipeline.clear().map_err(Failure::runtime)?;
        println!(
            "cleared all state of `{}`; its next run starts empty",
            pipeline.name()
        );
        return Ok(());
    };
    let Loaded {
        mut manifest,
        mut blobs,
    } = newest(pipeline)?;
    let Some(i) = manifest.operators.iter().position(|o| o.name == operator) else {
        return Err(Failure::usage(format!(
            "checkpoint {} has no operator `{operator}`",
            manifest.id
        )));
    };
    manifest.operators.remove(i);
    blobs.remove(i);
    manifest.id = pipeline.ids().first().map_or(1, |id| id + 1);
    manifest.created_ms = crate::dataflow::wall_clock_ms();
    pipeline
        .write(&manifest, &blobs)
        .map_err(Failure::runtime)?;
    println!(
        "operator `{operator}` of `{}` starts with empty state on its next run (checkpoint {})",
        pipeline.name(),
        manifest.id
    );
    Ok(())
}

fn compact(dir: &Path) -> Result<(), Failure> {
    let (fresh, old) = compaction_dirs(dir)
        .ok_or_else(|| Failure::usage(format!("{}: not a folder to compact", dir.display())))?;
    let failed = |what: &str, e: std::io::Error| Failure::runtime(format!("{what}: {e}"));
    // Held to the end: an open meanwhile waits (see `compaction.rs`).
    let lock =
        compaction::lock(dir, true).map_err(|e| failed("locking the store for compaction", e))?;
    // Opening it finishes (or undoes) a compaction cut short.
    let store = StateStore::open_holding(dir, &lock).map_err(Failure::runtime)?;
    let before = store.database_bytes();
    for name in store.pipelines() {
        let p = store.pipeline(&name).map_err(Failure::runtime)?;
        // Keeps every checkpoint; drops orphaned blobs and journal entries they all hold.
        p.prune(p.ids().len(), &[])
            .and_then(|()| p.remove_orphans())
            .map_err(Failure::runtime)?;
    }
    let after = store
        .copy_to(&fresh)
        .map_err(Failure::runtime)?
        .database_bytes();
    drop(store);
    // A crash from here on is finished by whatever opens the store next;
    // the last step is the one an open finishes with.
    let swap = || -> std::io::Result<()> {
        std::fs::rename(dir, &old)?;
        std::fs::rename(&fresh, dir)?;
        compaction::finish(dir).map(drop)
    };
    swap().map_err(|e| failed("swapping in the compacted store", e))?;
    println!(
        "compacted {}: database {before} → {after} bytes on disk",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{JOURNAL_DIR, JournalGroup};

    fn ok<T>(result: Result<T, Failure>) -> T {
        result.unwrap_or_else(|f| panic!("{}", f.message))
    }

    /// A store with a journal entry and a kept swap beside its database.
    fn store_with_host_files(dir: &Path) {
        let store = StateStore::open(dir).unwrap();
        let p = store.pipeline("p").unwrap();
        let mut group = JournalGroup::default();
        group.push(1, b"entry");
        p.journal_append(1, &group).unwrap();
        p.journal_sync().unwrap();
        std::fs::create_dir_all(dir.join("swapped")).unwrap();
        std::fs::write(dir.join("swapped/op.json"), b"kept").unwrap();
    }

    fn host_files_are_there(dir: &Path) {
        let store = StateStore::open(dir).unwrap();
        let p = store.pipeline("p").unwrap();
        assert_eq!(p.journal_after(0).unwrap(), [(1, b"entry".to_vec())]);
        assert_eq!(std::fs::read(dir.join("swapped/op.json")).unwrap(), b"kept");
    }

    #[test]
    fn a_compaction_keeps_the_host_files_beside_the_database() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        store_with_host_files(&dir);
        ok(compact(&dir));
        host_files_are_there(&dir);
        assert!(no_compaction_left(&dir));
    }

    /// A compaction of the store in `dir` stopped between its two renames.
    fn cut_between_renames(dir: &Path) {
        let (fresh, old) = compaction_dirs(dir).unwrap();
        std::fs::rename(dir, &old).unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
    }

    /// A compaction of the store in `dir` stopped after its renames, before
    /// the host's files moved.
    fn cut_after_renames(dir: &Path) {
        let (fresh, old) = compaction_dirs(dir).unwrap();
        StateStore::open(dir).unwrap().copy_to(&fresh).unwrap();
        std::fs::rename(dir, &old).unwrap();
        std::fs::rename(&fresh, dir).unwrap();
        assert!(!dir.join(JOURNAL_DIR).exists());
    }

    /// Whether a compaction's folders are gone from beside `dir`.
    fn no_compaction_left(dir: &Path) -> bool {
        let (fresh, old) = compaction_dirs(dir).unwrap();
        !fresh.exists() && !old.exists()
    }

    #[test]
    fn a_compaction_cut_short_is_finished_by_the_next_one() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        store_with_host_files(&dir);
        for cut in [cut_between_renames, cut_after_renames] {
            cut(&dir);
            ok(compact(&dir));
            host_files_are_there(&dir);
            assert!(no_compaction_left(&dir));
        }
    }

    #[test]
    fn a_run_after_a_compaction_cut_short_finds_the_store_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        store_with_host_files(&dir);
        for cut in [cut_between_renames, cut_after_renames] {
            cut(&dir);
            // What a run does first.
            drop(StateStore::open(&dir).unwrap());
            host_files_are_there(&dir);
            assert!(no_compaction_left(&dir));
        }
    }

    #[test]
    fn a_folder_without_a_name_is_not_compacted() {
        assert!(compaction_dirs(Path::new("..")).is_none());
        assert!(compaction_dirs(Path::new("/")).is_none());
        assert!(compact(Path::new("/")).is_err());
    }
}

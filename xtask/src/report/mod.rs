//! `BENCHMARKS.md`: the figures of the last benchmark runs
//! (`target/bench/*.json`), the machine they ran on and the commands that
//! reproduce them, with a bar chart of each benchmark's rates in
//! `benchmarks/`.

use std::fmt::Write as _;

use serde_json::Value;
use xshell::{Shell, cmd};

mod plot;

/// The command that writes each benchmark's figures.
fn command(name: &str) -> String {
    match name {
        "vs_flink" => "cargo xtask bench --vs-flink".into(),
        // Not in `cargo xtask bench`: minutes long, gigabytes of memory and disk.
        "durability-open-windows" => {
            "cargo bench -p eddy-host --bench durability -- open-windows 5".into()
        }
        name => format!("cargo bench -p eddy-host --bench {name}"),
    }
}

/// Writes `BENCHMARKS.md` (and `benchmarks/NAME.svg`) from what
/// `target/bench/` holds.
pub(crate) fn write(sh: &Shell) -> anyhow::Result<()> {
    let root = crate::project_root();
    let mut figures: Vec<(String, Value)> = Vec::new();
    for path in sh.read_dir(root.join("target/bench"))? {
        if path.extension().is_some_and(|e| e == "json")
            && let Some(name) = path.file_stem().and_then(|n| n.to_str())
            && let Ok(value) = serde_json::from_str(&sh.read_file(&path)?)
        {
            figures.push((name.to_owned(), value));
        }
    }
    // The comparison first, then the rest by name.
    figures.sort_by_key(|(name, _)| (name != "vs_flink", name.clone()));
    let mut md = String::from("# Benchmarks\n\n");
    md.push_str(
        "Figures of the last runs of `cargo xtask bench` (every benchmark but the \
         Flink comparison, no Java needed) and `cargo xtask bench --vs-flink`, \
         written by them from `target/bench/*.json`. Ratios compare cases \
         measured in the same run.\n\n",
    );
    md.push_str(&machine(sh));
    let plots = root.join("benchmarks");
    sh.create_dir(&plots)?;
    for (name, value) in &figures {
        let _ = write!(md, "\n## {name}\n\n`{}`\n\n", command(name));
        if let Some(svg) = plot::rates(name, value) {
            let file = format!("{name}.svg");
            sh.write_file(plots.join(&file), svg)?;
            let _ = writeln!(md, "![{name}](benchmarks/{file})\n");
        }
        section(value, &mut md);
    }
    sh.write_file(root.join("BENCHMARKS.md"), md)?;
    println!("wrote BENCHMARKS.md");
    Ok(())
}

/// The machine: processor, cores, memory, system, compiler, date.
fn machine(sh: &Shell) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|m| m.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or("unknown".to_owned(), |kb| {
            format!("{:.1} GiB", kb as f64 / (1 << 20) as f64)
        });
    let system = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or("unknown".to_owned(), |n| n.trim_matches('"').to_owned());
    let rustc = cmd!(sh, "rustc --version")
        .quiet()
        .read()
        .unwrap_or_default();
    let date = cmd!(sh, "date -u +%Y-%m-%d")
        .quiet()
        .read()
        .unwrap_or_default();
    format!("Machine: {cpu}, {cores} cores, {memory}; {system}; {rustc}; report written {date}.\n")
}

/// One benchmark's figures: its scalars as a list, each list of cases as a table.
fn section(value: &Value, md: &mut String) {
    let Value::Object(fields) = value else {
        let _ = writeln!(md, "{}", cell(value));
        return;
    };
    let mut tables = Vec::new();
    for (key, v) in fields {
        match v {
            Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => {
                tables.push((key, rows))
            }
            _ => {
                let _ = writeln!(md, "- {key}: {}", cell(v));
            }
        }
    }
    for (key, rows) in tables {
        let _ = writeln!(md, "\n{key}:\n");
        table(rows, md);
    }
}

/// Rows of objects as a Markdown table, columns in order of first appearance.
fn table(rows: &[Value], md: &mut String) {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| row.get(*c).map_or(String::new(), cell))
            .collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
}

/// A value as a table cell: numbers to four significant digits (no fewer
/// integer digits), nested values as compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let digits = if f == 0.0 {
                0
            } else {
                (3 - f.abs().log10().floor() as i32).max(0) as usize
            };
            format!("{f:.digits$}")
        }
        Value::String(s) => s.replace('|', "\\|"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_become_a_table_and_scalars_a_list() {
        let value = serde_json::json!({
            "records": 1000,
            "cases": [
                { "case": "a", "records_per_s": 1234.5678 },
                { "case": "b|c", "records_per_s": 0.012345, "extra": true },
            ],
        });
        let mut md = String::new();
        section(&value, &mut md);
        assert_eq!(
            md,
            "- records: 1000\n\ncases:\n\n| case | records_per_s | extra |\n| --- | --- | --- |\n\
             | a | 1235 |  |\n| b\\|c | 0.01235 | true |\n"
        );
    }
}

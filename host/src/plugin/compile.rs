//! Compiling a plugin's `.wasm`: bounded in input, time and memory.
//!
//! Before the compiler sees a module, its size and the size of each function
//! body are checked against [`CompileLimits`] (compile time and memory grow
//! with the largest function). The `eddy` command then compiles in a child
//! process of itself (`eddy plugin compile-worker`), niced, with its address
//! space limited to [`CompileLimits::memory_bytes`] and killed after
//! [`CompileLimits::timeout`]: a module built to make the compiler blow up
//! costs the host neither memory nor its deadline, and a compiler failure
//! cannot take the host down. The child hands back the compiled module in
//! wasmtime's serialized form, made by the same binary with the same engine
//! settings. Where no child can be started (the library used on its own,
//! as in unit tests) the compiler runs in this process, after the same checks.

#[cfg(feature = "compiler")]
use std::io::{Read, Write};
use std::path::PathBuf;
#[cfg(feature = "compiler")]
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
#[cfg(feature = "compiler")]
use std::time::Instant;

use wasmparser::{Parser, Payload};

use super::LoadError;
use super::engine::InstanceBounds;

/// Bounds on compiling one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// The largest `.wasm`, in bytes.
    pub module_bytes: usize,
    /// The largest function body, in bytes.
    pub function_bytes: usize,
    /// The longest compiling may take.
    pub timeout: Duration,
    /// The most memory (address space) the compiler may use.
    pub memory_bytes: u64,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            module_bytes: 16 << 20,
            function_bytes: 256 << 10,
            timeout: Duration::from_secs(60),
            memory_bytes: 512 << 20,
        }
    }
}

/// The executable that compiles in a child process, once set.
static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Makes this process compile plugins in child processes of `exe`, which
/// must be an `eddy` binary of this very build (its `plugin compile-worker`).
pub fn compile_in_child_processes(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

/// Refuses a module too large, or with a function body too large, to compile.
pub(crate) fn check_size(wasm: &[u8], limits: &CompileLimits) -> Result<(), LoadError> {
    if wasm.len() > limits.module_bytes {
        return Err(LoadError::TooLarge {
            what: "the module".into(),
            bytes: wasm.len(),
            limit: limits.module_bytes,
            setting: "module_limit_bytes",
        });
    }
    let mut index = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| LoadError::NotWasm(e.to_string()))? {
            Payload::ImportSection(imports) => {
                // Imported functions come first in the function index space.
                for import in imports.into_imports() {
                    let import = import.map_err(|e| LoadError::NotWasm(e.to_string()))?;
                    if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                        index += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let bytes = body.range().len();
                if bytes > limits.function_bytes {
                    return Err(LoadError::TooLarge {
                        what: format!("function {index}"),
                        bytes,
                        limit: limits.function_bytes,
                        setting: "function_limit_bytes",
                    });
                }
                index += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a module whose memory or table starts larger than any operator
/// may have, before it is compiled (a pooled engine could not take it).
pub(crate) fn check_initial_sizes(wasm: &[u8], bounds: InstanceBounds) -> Result<(), LoadError> {
    let malformed = |e: wasmparser::BinaryReaderError| LoadError::NotWasm(e.to_string());
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::MemorySection(memories) => {
                for memory in memories {
                    let bytes = memory.map_err(malformed)?.initial.saturating_mul(1 << 16);
                    if bytes > bounds.memory_bytes as u64 {
                        return Err(LoadError::StartsTooLarge {
                            what: "memory",
                            size: bytes,
                            unit: "bytes",
                            limit: bounds.memory_bytes,
                            setting: "memory_limit_bytes",
                        });
                    }
                }
            }
            Payload::TableSection(tables) => {
                for table in tables {
                    let elements = table.map_err(malformed)?.ty.initial;
                    if elements > bounds.table_elements as u64 {
                        return Err(LoadError::StartsTooLarge {
                            what: "table",
                            size: elements,
                            unit: "elements",
                            limit: bounds.table_elements,
                            setting: "table_limit_elements",
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Compiles `wasm` (already size-checked) for `engine`.
#[cfg(feature = "compiler")]
pub(crate) fn compile(
    engine: &wasmtime::Engine,
    wasm: &[u8],
    limits: &CompileLimits,
) -> Result<wasmtime::Module, LoadError> {
    let Some(exe) = WORKER.get() else {
        return wasmtime::Module::new(engine, wasm)
            .map_err(|e| LoadError::Compile(format!("{e:#}")));
    };
    let code = compile_in_child(exe, wasm, limits)?;
    // SAFETY: `code` is what this same binary's compiler made, in a child
    // process, from the module checked above, with this engine's settings:
    // the code wasmtime would have made here.
    unsafe { wasmtime::Module::deserialize(engine, &code) }
        .map_err(|e| LoadError::Compile(format!("the compiler's output does not load: {e:#}")))
}

/// Runs `exe plugin compile-worker` on `wasm` and returns what it compiled.
#[cfg(feature = "compiler")]
fn compile_in_child(
    exe: &std::path::Path,
    wasm: &[u8],
    limits: &CompileLimits,
) -> Result<Vec<u8>, LoadError> {
    let mut command = Command::new(exe);
    command
        .args([
            "plugin",
            "compile-worker",
            "--memory-limit-bytes",
            &limits.memory_bytes.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("EDDY_LOG", "off")
        .env("RUST_BACKTRACE", "0");
    crate::allocator::for_address_space_limit(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| LoadError::Compile(format!("cannot start the compiler process: {e}")))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let input = wasm.to_vec();
        scope.spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                // A child that died early closes the pipe: its exit says why.
                let _ = stdin.write_all(&input);
            }
        });
        let code = scope.spawn(move || {
            let mut code = Vec::new();
            if let Some(out) = stdout.as_mut() {
                let _ = out.read_to_end(&mut code);
            }
            code
        });
        let errors = scope.spawn(move || {
            let mut text = String::new();
            if let Some(err) = stderr.as_mut() {
                let _ = err.take(64 << 10).read_to_string(&mut text);
            }
            text
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= limits.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(LoadError::CompileLimit(format!(
                        "compiling took longer than {} ms (`compile_timeout_ms`)",
                        limits.timeout.as_millis()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(LoadError::Compile(format!("compiler process: {e}"))),
            }
        };
        (
            status,
            code.join().unwrap_or_default(),
            errors.join().unwrap_or_default(),
        )
    });
    let (status, code, errors) = outcome;
    let status = status?;
    if status.success() {
        return Ok(code);
    }
    let errors = errors.trim();
    if status.code() == Some(WORKER_REFUSED) {
        return Err(LoadError::Compile(errors.to_owned()));
    }
    // Anything else is the compiler dying: out of its memory (an allocation
    // failure aborts) or killed.
    Err(LoadError::CompileLimit(format!(
        "the compiler died ({status}) within its memory limit of {} bytes (`compile_memory_limit_bytes`){}",
        limits.memory_bytes,
        if errors.is_empty() {
            String::new()
        } else {
            format!(": {errors}")
        }
    )))
}

/// The worker's exit code when the module does not compile (not a crash).
#[cfg(feature = "compiler")]
const WORKER_REFUSED: i32 = 3;

/// `eddy plugin compile-worker`: reads a `.wasm` on stdin, writes the
/// compiled module on stdout. Runs niced, with its address space limited to
/// `memory_limit_bytes`.
#[cfg(feature = "compiler")]
pub fn worker(memory_limit_bytes: u64) -> std::process::ExitCode {
    let limit = libc::rlimit {
        rlim_cur: memory_limit_bytes as libc::rlim_t,
        rlim_max: memory_limit_bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit and setpriority with valid arguments; they only
    // affect this process.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &limit);
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("cannot read the module: {e}");
        return std::process::ExitCode::from(WORKER_REFUSED as u8);
    }
    let compiled = super::PluginEngine::compiler()
        .and_then(|engine| wasmtime::Module::new(&engine, &wasm))
        .and_then(|module| module.serialize());
    match compiled {
        Ok(code) => match std::io::stdout().write_all(&code) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(_) => std::process::ExitCode::from(1),
        },
        Err(e) => {
            eprintln!("{e:#}");
            std::process::ExitCode::from(WORKER_REFUSED as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one function whose body is `filler` bytes of `nop`.
    fn module_with_body(filler: usize) -> Vec<u8> {
        let nops = "nop\n".repeat(filler);
        wat::parse_str(format!("(module (func {nops}))")).unwrap()
    }

    #[test]
    fn modules_and_functions_over_their_limits_are_refused_before_compiling() {
        let limits = CompileLimits {
            module_bytes: 4096,
            function_bytes: 1000,
            ..CompileLimits::default()
        };
        assert!(check_size(&module_with_body(900), &limits).is_ok());
        // The body: a count of local declarations (1 byte), the nops, `end`.
        let err = check_size(&module_with_body(1200), &limits).unwrap_err();
        assert!(
            err.to_string().contains(
                "function 0 has 1202 bytes, over the limit of 1000 (`function_limit_bytes`)"
            ),
            "{err}"
        );
        let err = check_size(&module_with_body(5000), &limits).unwrap_err();
        assert!(err.to_string().contains("`module_limit_bytes`"), "{err}");
    }
}

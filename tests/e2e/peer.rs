//! A network peer for tests: a TCP server on 127.0.0.1 the test starts,
//! stops (closing every connection, so eddy sees the outage) and starts
//! again on the same port. It either collects the lines it is sent,
//! acknowledging each with a line back, or feeds lines to whoever connects.
//! It stands in for a collector or a device gateway; the eddy side talks to
//! it through its real `tcp` source and sink.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the peer does with a connection.
#[derive(Clone)]
pub(crate) enum Role {
    /// Keeps every line it is sent; answers each with a line when `ack`.
    Collect { ack: bool },
    /// Sends `line(n)` for n = 0, 1, 2, … (counting on across connections
    /// and restarts), one every `every`.
    Feed {
        line: Arc<dyn Fn(u64) -> String + Send + Sync>,
        every: Duration,
    },
}

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    connections: AtomicUsize,
    fed: AtomicU64,
}

/// A TCP server a test controls. Stops when dropped.
pub(crate) struct Peer {
    port: u16,
    role: Role,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    /// Starts on a free port.
    pub(crate) fn start(role: Role) -> Peer {
        Self::start_at(role, 0)
    }

    /// Starts on `port` (0: a free one).
    pub(crate) fn start_at(role: Role, port: u16) -> Peer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind a test peer");
        let port = listener.local_addr().unwrap().port();
        let mut peer = Peer {
            port,
            role,
            shared: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        peer.serve(listener);
        peer
    }

    /// Its address, `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The lines collected so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.shared
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lines fed so far.
    pub(crate) fn fed(&self) -> u64 {
        self.shared.fed.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Starts again on the same port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let listener =
            TcpListener::bind(("127.0.0.1", self.port)).expect("bind the same port again");
        self.stop = Arc::default();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (role, shared, stop) = (self.role.clone(), self.shared.clone(), self.stop.clone());
        self.thread = Some(std::thread::spawn(move || {
            let mut connections = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        let (role, shared, stop) = (role.clone(), shared.clone(), stop.clone());
                        let closer = stream.try_clone().unwrap();
                        connections.push((
                            closer,
                            std::thread::spawn(move || handle(stream, &role, &shared, &stop)),
                        ));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("test peer: {e}"),
                }
            }
            for (stream, thread) in connections {
                let _ = stream.shutdown(Shutdown::Both);
                let _ = thread.join();
            }
        }));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(stream: TcpStream, role: &Role, shared: &Shared, stop: &AtomicBool) {
    stream.set_nodelay(true).unwrap();
    match role {
        Role::Collect { ack } => {
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while !stop.load(Ordering::SeqCst) {
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) if line.ends_with('\n') => {
                        shared
                            .lines
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(line.trim_end().to_owned());
                        line.clear();
                        if *ack && writer.write_all(b"ok\n").is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        }
        Role::Feed { line, every } => {
            let mut stream = stream;
            while !stop.load(Ordering::SeqCst) {
                let n = shared.fed.load(Ordering::SeqCst);
                if stream
                    .write_all(format!("{}\n", line(n)).as_bytes())
                    .is_err()
                {
                    return;
                }
                shared.fed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(*every);
            }
        }
    }
}

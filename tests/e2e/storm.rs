//! A storm of `GET /status` requests against eddy's local API: 100 clients,
//! each on a connection of its own that it keeps (as a scraper or a
//! dashboard does), every third without the token. Used by the API tests
//! and by the API benchmark (`host/benches/api.rs`).

use std::time::Duration;

/// Answers a client got, by status.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Answers {
    /// 200.
    pub(crate) ok: u64,
    /// 401: no token, or a wrong one.
    pub(crate) refused: u64,
    /// 429 or 503: over the rate the API serves, or too many at once.
    pub(crate) busy: u64,
    /// Anything else.
    pub(crate) other: u64,
}

/// Sends `GET /status` over one kept connection until `until`; returns
/// the answers that came back.
async fn client(address: &str, token: Option<&str>, until: tokio::time::Instant) -> Answers {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET /status HTTP/1.1\r\nHost: eddy\r\n{auth}\r\n");
    let mut answers = Answers::default();
    while tokio::time::Instant::now() < until {
        let Ok(stream) = tokio::net::TcpStream::connect(address).await else {
            continue;
        };
        let mut reader = tokio::io::BufReader::new(stream);
        'kept: while tokio::time::Instant::now() < until {
            if reader
                .get_mut()
                .write_all(request.as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut length = 0;
            let mut line = String::new();
            let mut code = None;
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break 'kept,
                    Ok(_) => {}
                }
                if line == "\r\n" {
                    break;
                }
                if code.is_none() {
                    code = line.split(' ').nth(1).map(str::to_owned);
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                break;
            }
            match code.as_deref() {
                Some("200") => answers.ok += 1,
                Some("401") => answers.refused += 1,
                Some("429" | "503") => answers.busy += 1,
                _ => answers.other += 1,
            }
        }
    }
    answers
}

impl Answers {
    fn add(&mut self, other: Answers) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.busy += other.busy;
        self.other += other.other;
    }

    /// Every answer.
    pub(crate) fn total(&self) -> u64 {
        self.ok + self.refused + self.busy + self.other
    }
}

/// Runs the 100 clients for `span` on a thread of their own (at the lowest
/// priority if `lowest_priority`, to stand in for other machines); returns
/// what the clients with the token got, and what those without it got.
pub(crate) fn storm(
    address: &str,
    token: &str,
    span: Duration,
    lowest_priority: bool,
) -> (Answers, Answers) {
    let (address, token) = (address.to_owned(), token.to_owned());
    std::thread::spawn(move || {
        if lowest_priority {
            // SAFETY: setpriority on this thread only.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the clients");
        runtime.block_on(async move {
            let until = tokio::time::Instant::now() + span;
            let clients: Vec<_> = (0..100)
                .map(|n| {
                    let (address, token) = (address.clone(), token.clone());
                    let authorised = n % 3 != 0;
                    let task = tokio::spawn(async move {
                        client(&address, authorised.then_some(&token), until).await
                    });
                    (authorised, task)
                })
                .collect();
            let (mut with, mut without) = (Answers::default(), Answers::default());
            for (authorised, task) in clients {
                let answers = task.await.unwrap_or_default();
                if authorised {
                    with.add(answers);
                } else {
                    without.add(answers);
                }
            }
            (with, without)
        })
    })
    .join()
    .expect("the clients' thread")
}

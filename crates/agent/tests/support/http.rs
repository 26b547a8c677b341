//! A local HTTP server for tests: it records every request and answers as the test says
//! (alert channels, URLs called by http tasks). Included by the test binaries that need it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The server: `reply` gives each request's status line (`"200 OK"`) and body.
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(
        mut reply: impl FnMut(&Received) -> (&'static str, String) + Send + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let target = parts.next().unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let request =
                    Received { method, target, headers, body: String::from_utf8(body).unwrap() };
                let (status, body) = reply(&request);
                log.lock().unwrap().push(request);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Receiver { port, got }
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests to paths starting with `prefix`.
    pub fn at(&self, prefix: &str) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.target.starts_with(prefix)).collect()
    }

    /// Waits until `f` holds for the requests to `prefix`.
    pub fn wait(
        &self,
        prefix: &str,
        what: &str,
        secs: u64,
        f: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let began = Instant::now();
        loop {
            let got = self.at(prefix);
            if f(&got) {
                return got;
            }
            assert!(
                began.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what} at {prefix}: {got:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

//! A small boot-storm load generator for `bench/run`.
//!
//! One OS thread per connection (blocking I/O), each replaying the request list (one line
//! per request: `path<TAB>user-agent`) from its own offset, in order, so every phone's files
//! come in its vendor's boot order. Modes:
//!
//! - `keepalive`: one HTTP/1.1 connection per thread, reused for every request;
//! - `close`: a new TCP connection (and, with `--tls`, a full TLS handshake) per request,
//!   `Connection: close`. TLS session resumption is off: no session cache, no tickets, a
//!   fresh `ClientConnection` per request, as a phone that has just rebooted.
//!
//! Stops after `--duration` seconds or `--max-requests` requests, whichever comes first, and
//! prints one JSON object: requests, errors, statuses, bytes, elapsed, rps, latency
//! percentiles (microseconds, from connect to the last byte of the answer).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

struct Opts {
    addr: SocketAddr,
    host: String,
    tls: bool,
    keepalive: bool,
    conns: usize,
    duration: Duration,
    max_requests: u64,
    requests: Vec<(String, String)>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --addr IP:PORT --requests FILE [--host NAME] [--tls] \
         [--mode keepalive|close] [--conns N] [--duration SECS] [--max-requests N]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut host, mut tls, mut keepalive) = (None, "localhost".to_owned(), false, true);
    let (mut conns, mut duration, mut max_requests, mut file) = (64, 10.0f64, u64::MAX, None);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--addr" => addr = Some(val().parse().unwrap_or_else(|_| usage())),
            "--host" => host = val(),
            "--tls" => tls = true,
            "--mode" => {
                keepalive = match val().as_str() {
                    "keepalive" => true,
                    "close" => false,
                    _ => usage(),
                }
            }
            "--conns" => conns = val().parse().unwrap_or_else(|_| usage()),
            "--duration" => duration = val().parse().unwrap_or_else(|_| usage()),
            "--max-requests" => max_requests = val().parse().unwrap_or_else(|_| usage()),
            "--requests" => file = Some(val()),
            _ => usage(),
        }
    }
    let text = std::fs::read_to_string(file.unwrap_or_else(|| usage())).expect("request file");
    let requests: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (p, ua) = l.split_once('\t').unwrap_or((l, ""));
            (p.to_owned(), ua.to_owned())
        })
        .collect();
    assert!(!requests.is_empty(), "no requests");
    Opts {
        addr: addr.unwrap_or_else(|| usage()),
        host,
        tls,
        keepalive,
        conns: conns.max(1),
        duration: Duration::from_secs_f64(duration),
        max_requests,
        requests,
    }
}

/// Accepts any certificate: the servers are ours, on loopback, and the client's cost of
/// verifying is not what is measured. Signatures are not checked either.
#[derive(Debug)]
struct AcceptAll(Vec<SignatureScheme>);

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

fn tls_config() -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    // One key exchange both servers have (no post-quantum hybrid share, no retry).
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(schemes)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

struct Conn {
    io: Box<dyn Stream>,
    buf: Vec<u8>,
}

/// What one answer was: status, body length, whether the server keeps the connection.
struct Answer {
    status: u16,
    bytes: usize,
    keep: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    fn open(o: &Opts, tls: &Option<Arc<ClientConfig>>) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect_timeout(&o.addr, Duration::from_secs(5))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let io: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(o.host.clone()).expect("server name");
                let conn = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(std::io::Error::other)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                // Complete the handshake now, so a failure is a connect error.
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Box::new(s)
            }
        };
        Ok(Conn {
            io,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.io.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn request(&mut self, host: &str, path: &str, ua: &str, close: bool) -> std::io::Result<Answer> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        );
        self.io.write_all(req.as_bytes())?;
        self.io.flush()?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let (mut length, mut chunked, mut keep) = (None, false, !close);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else { continue };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" if v.contains("close") => keep = false,
                _ => {}
            }
        }
        self.buf.drain(..head_end);
        let bytes = if chunked {
            let mut total = 0;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if self.fill()? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .map_err(std::io::Error::other)?;
                while self.buf.len() < line_end + 2 + size + 2 {
                    if self.fill()? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                self.buf.drain(..line_end + 2 + size + 2);
                total += size;
                if size == 0 {
                    break total;
                }
            }
        } else if let Some(n) = length {
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            self.buf.drain(..n);
            n
        } else {
            // Body up to the end of the connection.
            while self.fill()? > 0 {}
            let n = self.buf.len();
            self.buf.clear();
            keep = false;
            n
        };
        Ok(Answer { status, bytes, keep })
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    bytes: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
}

fn main() {
    let o = Arc::new(parse());
    let tls = o.tls.then(tls_config);
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut threads = Vec::new();
    for t in 0..o.conns {
        let (o, tls, stop, issued) = (o.clone(), tls.clone(), stop.clone(), issued.clone());
        threads.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut tally = Tally::default();
                    let n = o.requests.len();
                    let mut i = t * n / o.conns;
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) {
                        if Instant::now() >= deadline
                            || issued.fetch_add(1, Ordering::Relaxed) >= o.max_requests
                        {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        let (path, ua) = &o.requests[i % n];
                        i += 1;
                        let began = Instant::now();
                        let result = (|| {
                            if conn.is_none() {
                                conn = Some(Conn::open(&o, &tls)?);
                            }
                            let c = conn.as_mut().unwrap();
                            c.request(&o.host, path, ua, !o.keepalive)
                        })();
                        match result {
                            Ok(a) => {
                                tally
                                    .latencies_us
                                    .push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                tally.bytes += a.bytes as u64;
                                *tally.statuses.entry(a.status).or_default() += 1;
                                if !a.keep || !o.keepalive {
                                    conn = None;
                                }
                            }
                            Err(_) => {
                                tally.errors += 1;
                                conn = None;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    tally
                })
                .expect("thread"),
        );
    }
    let mut all = Tally::default();
    for th in threads {
        let t = th.join().expect("worker");
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        all.bytes += t.bytes;
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        if all.latencies_us.is_empty() {
            return 0;
        }
        let idx = ((p / 100.0) * (all.latencies_us.len() as f64 - 1.0)).round() as usize;
        all.latencies_us[idx]
    };
    let n = all.latencies_us.len();
    let statuses: Vec<String> = all
        .statuses
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!(
        "{{\"requests\": {n}, \"errors\": {}, \"bytes\": {}, \"elapsed_s\": {elapsed:.3}, \
         \"rps\": {:.1}, \"p50_us\": {}, \"p90_us\": {}, \"p99_us\": {}, \"max_us\": {}, \
         \"statuses\": {{{}}}}}",
        all.errors,
        all.bytes,
        n as f64 / elapsed,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        all.latencies_us.last().copied().unwrap_or(0),
        statuses.join(", ")
    );
}

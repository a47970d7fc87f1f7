//! Listeners: plain HTTP and HTTPS (rustls), both handing handlers the same `Peer`: the
//! client's address and, over HTTPS, the names in the client certificate it presented
//! (verified against the configured CA bundle).
//!
//! TLS handshakes run in their own tasks with a time limit, so a client that connects and
//! says nothing holds up no one. The server configuration can be replaced while running
//! (`TlsConfig::replace`, on SIGHUP): new connections use the new certificate.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use provisor_domain::Mac;
use provisor_domain::phone::canonical_ip;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// Behind load balancers: a request whose connection comes from one of `trusted` (the
/// balancers' addresses) is taken to come from the client its `X-Forwarded-For` names —
/// the right-most address not itself trusted — so limits, network rules and contact
/// records see the phone, not the balancer. From anyone else the header is ignored.
pub async fn forwarded(
    axum::extract::State(trusted): axum::extract::State<std::sync::Arc<Vec<ipnet::IpNet>>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !trusted.is_empty() {
        let from = request
            .extensions()
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|c| c.0.clone());
        if let Some(mut peer) = from {
            let is_trusted =
                |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(&canonical_ip(ip)));
            let client = is_trusted(peer.addr.ip())
                .then(|| forwarded_client(request.headers(), &is_trusted))
                .flatten();
            if let Some(client) = client {
                peer.addr = SocketAddr::new(client, peer.addr.port());
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
        }
    }
    next.run(request).await
}

/// The client `X-Forwarded-For` names: walking from the right (the nearest hop), the first
/// address that is not a trusted proxy; none if the header is missing or malformed.
fn forwarded_client(
    headers: &axum::http::HeaderMap,
    is_trusted: &dyn Fn(std::net::IpAddr) -> bool,
) -> Option<std::net::IpAddr> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = None;
    for hop in hops.iter().rev() {
        let ip: std::net::IpAddr = hop.parse().ok()?;
        client = Some(canonical_ip(ip));
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Serves `app` on `listener` until `stopped`, then lets the connections in progress
/// finish. Each connection's requests carry its `Peer` (`ConnectInfo`). A client gets
/// `header_read` to send a request's headers (slowloris: a client trickling bytes does not
/// hold its connection for ever), HTTP/1.1 and HTTP/2, with upgrades (WebSockets).
pub async fn serve<L>(
    mut listener: L,
    app: axum::Router,
    header_read: Duration,
    stopped: impl std::future::Future<Output = ()>,
) where
    L: Listener<Addr = Peer>,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stopped = std::pin::pin!(stopped);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    builder.http2().enable_connect_protocol();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer.clone()));
                request.map(axum::body::Body::new)
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Longest a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
    /// The subject common name and DNS names of a verified client certificate.
    pub client_names: Vec<String>,
}

impl Peer {
    /// The MAC a verified client certificate names (phones' device certificates carry it
    /// as the common name or a DNS name), if any name is one.
    pub fn client_mac(&self) -> Option<Mac> {
        self.client_names.iter().find_map(|n| {
            let n = n.trim();
            // Some vendors prefix the MAC (Cisco's "SEP…"); twelve hex digits are enough.
            let hex = n.get(n.len().saturating_sub(12)..).unwrap_or(n);
            Mac::parse(n).or_else(|_| Mac::parse(hex)).ok()
        })
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Plain HTTP.
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TcpStream, Peer) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    return (
                        stream,
                        Peer {
                            addr,
                            tls: false,
                            client_names: Vec::new(),
                        },
                    );
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            tls: false,
            client_names: Vec::new(),
        })
    }
}

/// Out of file descriptors and the like: wait a moment rather than spin.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The TLS server configuration in force; replaceable while serving.
pub struct TlsConfig(RwLock<Arc<ServerConfig>>);

impl TlsConfig {
    pub fn new(config: ServerConfig) -> Arc<Self> {
        Arc::new(Self(RwLock::new(Arc::new(config))))
    }

    pub fn replace(&self, config: ServerConfig) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// HTTPS: connections whose handshake completed, in the order they completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<TlsConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                let tls = TlsAcceptor::from(config.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let client_names = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| certificate_names(c.as_ref()))
                                .unwrap_or_default();
                            let peer = Peer {
                                addr,
                                tls: true,
                                client_names,
                            };
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The acceptor task only ends when aborted, with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            addr: self.local,
            tls: true,
            client_names: Vec::new(),
        })
    }
}

/// The subject's common names and the DNS names of a DER certificate.
fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(&ip));
        let client = |values: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            forwarded_client(&h, &is_trusted).map(|ip| ip.to_string())
        };
        assert_eq!(client(&["198.51.100.7"]).as_deref(), Some("198.51.100.7"));
        // Spoofed left entries do not count; inner balancers are skipped.
        assert_eq!(
            client(&["1.2.3.4, 198.51.100.7, 10.0.0.2"]).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            client(&["1.2.3.4", "198.51.100.7"]).as_deref(),
            Some("198.51.100.7"),
            "several headers are one list"
        );
        // Only balancers: the farthest one.
        assert_eq!(client(&["10.0.0.3, 10.0.0.2"]).as_deref(), Some("10.0.0.3"));
        // IPv4-mapped IPv6 as IPv4; garbage: none.
        assert_eq!(
            client(&["::ffff:198.51.100.7"]).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(client(&["198.51.100.7, junk"]), None);
        assert_eq!(client(&[]), None);
    }

    use super::*;

    fn peer(names: &[&str]) -> Peer {
        Peer {
            addr: "127.0.0.1:1".parse().unwrap(),
            tls: true,
            client_names: names.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_mac_comes_from_the_certificate_names() {
        assert_eq!(
            peer(&["001565aabbcc"]).client_mac(),
            Some(Mac::parse("001565aabbcc").unwrap())
        );
        assert_eq!(
            peer(&["phone", "00:15:65:AA:BB:CC"]).client_mac(),
            Some(Mac::parse("001565aabbcc").unwrap())
        );
        assert_eq!(
            peer(&["SEP001565AABBCC"]).client_mac(),
            Some(Mac::parse("001565aabbcc").unwrap())
        );
        assert_eq!(peer(&["provisor.example.com"]).client_mac(), None);
        assert_eq!(peer(&[]).client_mac(), None);
    }
}

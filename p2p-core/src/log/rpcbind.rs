//! Talking to rpcbind: registering the log service locally, finding it on a host.
//!
//! Registration goes to the local rpcbind over its Unix socket (`/run/rpcbind.sock`, where C
//! servers register and where the caller's uid is known, so stale entries of any owner can be
//! removed as root), else over TCP to `127.0.0.1:111`. Each step tries rpcbind v4, then v3, then
//! portmapper v2, moving down when the server answers PROG_MISMATCH or PROG_UNAVAIL.
//!
//! Lookup asks rpcbind on port 111 of the log host over TCP: v4 GETADDR (netid `tcp`, or `tcp6`
//! for an IPv6 host), then v3 GETADDR, then portmapper v2 GETPORT.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use p2p_proto::Encode;
use p2p_proto::rpc::log::{LOG_PROG, LOG_VERS};
use p2p_proto::rpc::message::{AcceptStat, CallFailure};
use p2p_proto::rpcbind::{
    IPPROTO_TCP, IPPROTO_UDP, Mapping, PMAP_PORT, PMAP_VERS, PMAPPROC_GETPORT, PMAPPROC_SET,
    PMAPPROC_UNSET, RPCBPROC_GETADDR, RPCBPROC_SET, RPCBPROC_UNSET, RPCBVERS_3, RPCBVERS_4, Rpcb,
    decode_bool_reply, decode_getaddr_reply, decode_getport_reply, pmap_call, rpcb_call,
    socket_addr_from_uaddr, uaddr_from_socket_addr,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::LogError;
use super::client::{MAX_REPLY, RpcStream, next_xid};

/// Where C programs (libtirpc) reach the local rpcbind.
pub const RPCBIND_SOCKETS: [&str; 2] = ["/run/rpcbind.sock", "/var/run/rpcbind.sock"];

/// The owner string this crate puts in its rpcbind requests (rpcbind records the caller's real
/// identity instead when it knows it).
const OWNER: &str = "p2p-log";

/// The versions of the rpcbind program tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V4,
    V3,
    Pmap2,
}

impl Version {
    /// The program version number this version's calls carry.
    const fn number(self) -> u32 {
        match self {
            Self::V4 => RPCBVERS_4,
            Self::V3 => RPCBVERS_3,
            Self::Pmap2 => PMAP_VERS,
        }
    }
}

const VERSIONS: [Version; 3] = [Version::V4, Version::V3, Version::Pmap2];

/// Whether a failure means "try an older version of rpcbind".
fn version_unsupported(e: &LogError) -> bool {
    matches!(
        e,
        LogError::Call {
            failure: CallFailure::Accepted {
                stat: AcceptStat::ProgMismatch { .. } | AcceptStat::ProgUnavail
            },
            ..
        }
    )
}

/// Sends a call and decodes its reply with `decode`, checking the xid.
async fn exchange<S, T>(
    stream: &mut RpcStream<S>,
    xid: u32,
    msg: &[u8],
    what: &'static str,
    timeout: Duration,
    decode: impl Fn(
        &[u8],
    ) -> Result<Option<p2p_proto::rpc::message::Reply<T>>, p2p_proto::xdr::XdrError>,
) -> Result<T, LogError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let record = stream.call(msg, what, timeout).await?;
    let Some((got, result)) = decode(&record)? else {
        return Err(LogError::Xdr(p2p_proto::xdr::XdrError::InvalidValue {
            what: "truncated rpcbind reply",
        }));
    };
    if got != xid {
        return Err(LogError::XidMismatch { expected: xid, got });
    }
    result.map_err(|failure| LogError::Call { what, failure })
}

/// The bytes of a call, for [`exchange`].
fn encoded(call: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(call.encoded_len());
    call.encode(&mut out);
    out
}

fn netids(addr: &SocketAddr) -> (&'static str, &'static str) {
    if addr.is_ipv4() {
        ("tcp", "udp")
    } else {
        ("tcp6", "udp6")
    }
}

/// Unsets every registration of (LOG_PROG, LOG_VERS), then sets tcp and udp.
async fn register_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut RpcStream<S>,
    version: Version,
    tcp: SocketAddr,
    udp: SocketAddr,
    timeout: Duration,
) -> Result<(), LogError> {
    unset_on(stream, version, timeout).await?;
    let (tcp_netid, udp_netid) = netids(&tcp);
    for (addr, netid, prot) in [(tcp, tcp_netid, IPPROTO_TCP), (udp, udp_netid, IPPROTO_UDP)] {
        let xid = next_xid();
        let msg = match version {
            Version::V4 | Version::V3 => {
                let vers = version.number();
                let rpcb = Rpcb::new(
                    LOG_PROG,
                    LOG_VERS,
                    netid,
                    &uaddr_from_socket_addr(&addr),
                    OWNER,
                )?;
                encoded(&rpcb_call(xid, vers, RPCBPROC_SET, &rpcb))
            }
            Version::Pmap2 => {
                let mapping = Mapping {
                    prog: LOG_PROG,
                    vers: LOG_VERS,
                    prot,
                    port: u32::from(addr.port()),
                };
                encoded(&pmap_call(xid, PMAPPROC_SET, &mapping))
            }
        };
        if !exchange(stream, xid, &msg, "rpcbind SET", timeout, decode_bool_reply).await? {
            return Err(LogError::Call {
                what: "rpcbind SET (an entry of another owner remains; `rpcinfo -d 536871065 1` removes it)",
                failure: CallFailure::Accepted {
                    stat: AcceptStat::SystemErr,
                },
            });
        }
    }
    Ok(())
}

async fn unset_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut RpcStream<S>,
    version: Version,
    timeout: Duration,
) -> Result<(), LogError> {
    let xid = next_xid();
    let msg = match version {
        Version::V4 | Version::V3 => {
            let vers = version.number();
            // An empty netid removes the registrations of every netid.
            encoded(&rpcb_call(
                xid,
                vers,
                RPCBPROC_UNSET,
                &Rpcb::new(LOG_PROG, LOG_VERS, "", "", OWNER)?,
            ))
        }
        Version::Pmap2 => {
            let mapping = Mapping {
                prog: LOG_PROG,
                vers: LOG_VERS,
                prot: 0,
                port: 0,
            };
            encoded(&pmap_call(xid, PMAPPROC_UNSET, &mapping))
        }
    };
    // FALSE only means there was nothing (of ours) to remove.
    exchange(
        stream,
        xid,
        &msg,
        "rpcbind UNSET",
        timeout,
        decode_bool_reply,
    )
    .await?;
    Ok(())
}

/// How the log service reached rpcbind, kept to unset on shutdown.
#[derive(Debug, Clone)]
pub struct Registration {
    via: Via,
    version: Version,
}

#[derive(Debug, Clone)]
enum Via {
    Unix(&'static str),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.version {
            Version::V4 => "rpcbind v4",
            Version::V3 => "rpcbind v3",
            Version::Pmap2 => "portmapper v2",
        };
        match &self.via {
            Via::Unix(path) => write!(f, "{version} via {path}"),
            Via::Tcp(addr) => write!(f, "{version} via {addr}"),
        }
    }
}

fn local_rpcbind() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, PMAP_PORT))
}

async fn connect(via: &Via, timeout: Duration) -> Result<Connection, LogError> {
    let what = "connecting to rpcbind";
    let connected = match via {
        Via::Unix(path) => tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| LogError::Timeout { what, timeout })?
            .map(|s| Connection::Unix(RpcStream::new(s, MAX_REPLY))),
        Via::Tcp(addr) => tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| LogError::Timeout { what, timeout })?
            .map(|s| Connection::Tcp(RpcStream::new(s, MAX_REPLY))),
    };
    connected.map_err(|e| {
        let place = match via {
            Via::Unix(p) => (*p).to_owned(),
            Via::Tcp(a) => a.to_string(),
        };
        LogError::io(format!("connecting to rpcbind at {place}"), e)
    })
}

enum Connection {
    Unix(RpcStream<UnixStream>),
    Tcp(RpcStream<TcpStream>),
}

/// Registers LOG_PROG v1 for `tcp` and `udp` with the local rpcbind, removing stale entries
/// first. Tries the Unix sockets, then TCP to 127.0.0.1:111; the error is the last one.
pub async fn register(
    tcp: SocketAddr,
    udp: SocketAddr,
    timeout: Duration,
) -> Result<Registration, LogError> {
    let mut vias: Vec<Via> = RPCBIND_SOCKETS
        .into_iter()
        .filter(|path| Path::new(path).exists())
        .map(Via::Unix)
        .collect();
    vias.push(Via::Tcp(local_rpcbind()));
    let mut last = None;
    for via in vias {
        match register_via(&via, tcp, udp, timeout).await {
            Ok(version) => return Ok(Registration { via, version }),
            Err(e) => {
                tracing::debug!("registering via {via:?}: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(LogError::NotRegistered {
        host: "localhost".to_owned(),
    }))
}

async fn register_via(
    via: &Via,
    tcp: SocketAddr,
    udp: SocketAddr,
    timeout: Duration,
) -> Result<Version, LogError> {
    let mut conn = connect(via, timeout).await?;
    for version in VERSIONS {
        let done = match &mut conn {
            Connection::Unix(s) => register_on(s, version, tcp, udp, timeout).await,
            Connection::Tcp(s) => register_on(s, version, tcp, udp, timeout).await,
        };
        match done {
            Ok(()) => return Ok(version),
            Err(e) if version_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err(LogError::Call {
        what: "rpcbind SET",
        failure: CallFailure::Accepted {
            stat: AcceptStat::ProgUnavail,
        },
    })
}

impl Registration {
    /// Removes the registrations of LOG_PROG v1 (all netids).
    pub async fn unset(&self, timeout: Duration) -> Result<(), LogError> {
        let mut conn = connect(&self.via, timeout).await?;
        match &mut conn {
            Connection::Unix(s) => unset_on(s, self.version, timeout).await,
            Connection::Tcp(s) => unset_on(s, self.version, timeout).await,
        }
    }
}

/// Finds the TCP address of LOG_PROG v1 on `host` through its rpcbind (port 111): the host's
/// address with the registered port.
pub async fn lookup_tcp(host: IpAddr, timeout: Duration) -> Result<SocketAddr, LogError> {
    let rpcbind = SocketAddr::new(host, PMAP_PORT);
    let what = "connecting to rpcbind";
    let stream = tokio::time::timeout(timeout, TcpStream::connect(rpcbind))
        .await
        .map_err(|_| LogError::Timeout { what, timeout })?
        .map_err(|e| LogError::io(format!("connecting to rpcbind at {rpcbind}"), e))?;
    let mut stream = RpcStream::new(stream, MAX_REPLY);
    let netid = if host.is_ipv4() { "tcp" } else { "tcp6" };
    for version in VERSIONS {
        let xid = next_xid();
        let port = match version {
            Version::V4 | Version::V3 => {
                let vers = version.number();
                let query = Rpcb::new(LOG_PROG, LOG_VERS, netid, "", OWNER)?;
                let msg = encoded(&rpcb_call(xid, vers, RPCBPROC_GETADDR, &query));
                exchange(
                    &mut stream,
                    xid,
                    &msg,
                    "rpcbind GETADDR",
                    timeout,
                    decode_getaddr_reply,
                )
                .await
                .and_then(|uaddr| {
                    if uaddr.is_empty() {
                        return Ok(None);
                    }
                    Ok(Some(socket_addr_from_uaddr(&uaddr)?.port()))
                })
            }
            Version::Pmap2 => {
                let mapping = Mapping {
                    prog: LOG_PROG,
                    vers: LOG_VERS,
                    prot: IPPROTO_TCP,
                    port: 0,
                };
                let msg = encoded(&pmap_call(xid, PMAPPROC_GETPORT, &mapping));
                exchange(
                    &mut stream,
                    xid,
                    &msg,
                    "portmapper GETPORT",
                    timeout,
                    decode_getport_reply,
                )
                .await
            }
        };
        match port {
            Ok(Some(port)) => return Ok(SocketAddr::new(host, port)),
            Ok(None) => {
                return Err(LogError::NotRegistered {
                    host: host.to_string(),
                });
            }
            Err(e) if version_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err(LogError::NotRegistered {
        host: host.to_string(),
    })
}

//! Portmapper v2 and rpcbind v3/v4 (RFC 1833): the messages a server uses to register and a client
//! to find a program's port, and universal addresses (RFC 5665).
//!
//! ```text
//! struct mapping { unsigned int prog; unsigned int vers; unsigned int prot; unsigned int port; };
//! program PMAP_PROG { version PMAP_VERS {              /* 100000, version 2 */
//!     bool PMAPPROC_SET(mapping) = 1; bool PMAPPROC_UNSET(mapping) = 2;
//!     unsigned int PMAPPROC_GETPORT(mapping) = 3; } = 2; } = 100000;
//! struct rpcb { unsigned int r_prog; unsigned int r_vers; string r_netid<>; string r_addr<>;
//!     string r_owner<>; };
//! program RPCBPROG { version RPCBVERS { /* 3 */ version RPCBVERS4 { /* 4 */
//!     bool RPCBPROC_SET(rpcb) = 1; bool RPCBPROC_UNSET(rpcb) = 2;
//!     string RPCBPROC_GETADDR(rpcb) = 3; ... } } = 100000;
//! ```
//!
//! ```
//! use p2p_proto::rpcbind::{socket_addr_from_uaddr, uaddr_from_socket_addr};
//!
//! let addr = socket_addr_from_uaddr("127.0.0.1.226.229").unwrap();
//! assert_eq!(addr.port(), 58085);
//! assert_eq!(uaddr_from_socket_addr(&addr), "127.0.0.1.226.229");
//! ```

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use bytes::BufMut;

use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, cut, map_res, verify};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::codec::{Decode, Encode, finish};
use crate::rpc::message::{Call, Reply, decode_reply};
use crate::xdr::{self, XdrError, XdrResult};

/// Program number of portmapper and rpcbind.
pub const PMAP_PROG: u32 = 100_000;
/// Portmapper version 2.
pub const PMAP_VERS: u32 = 2;
/// rpcbind version 3.
pub const RPCBVERS_3: u32 = 3;
/// rpcbind version 4.
pub const RPCBVERS_4: u32 = 4;
/// The well-known port of portmapper and rpcbind.
pub const PMAP_PORT: u16 = 111;

/// PMAPPROC_SET: register a mapping → bool.
pub const PMAPPROC_SET: u32 = 1;
/// PMAPPROC_UNSET: remove the mappings of (prog, vers), all protocols → bool.
pub const PMAPPROC_UNSET: u32 = 2;
/// PMAPPROC_GETPORT: the port of (prog, vers, prot), 0 if none → unsigned int.
pub const PMAPPROC_GETPORT: u32 = 3;
/// RPCBPROC_SET: register an rpcb → bool.
pub const RPCBPROC_SET: u32 = 1;
/// RPCBPROC_UNSET: remove registrations of (prog, vers, netid; all netids if "") → bool.
pub const RPCBPROC_UNSET: u32 = 2;
/// RPCBPROC_GETADDR: the universal address of (prog, vers, netid), "" if none → string.
pub const RPCBPROC_GETADDR: u32 = 3;

/// `mapping.prot` for TCP.
pub const IPPROTO_TCP: u32 = 6;
/// `mapping.prot` for UDP.
pub const IPPROTO_UDP: u32 = 17;

/// Bound this crate puts on the strings of [`Rpcb`] (netids, universal addresses and owners are
/// short; the `.x` leaves them unbounded).
pub const RPCB_STRING_MAX: u32 = 255;

/// `mapping`: a portmapper v2 registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Protocol: [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub prot: u32,
    /// Port (0 in UNSET and GETPORT).
    pub port: u32,
}

impl Mapping {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 16;

    /// `mapping = prog vers prot port`, four `unsigned int`s.
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        (xdr::u32, xdr::u32, xdr::u32, xdr::u32)
            .map(|(prog, vers, prot, port)| Self {
                prog,
                vers,
                prot,
                port,
            })
            .parse(input)
    }
}

impl Encode for Mapping {
    /// Encodes the mapping.
    fn encode(&self, buf: &mut impl BufMut) {
        for v in [self.prog, self.vers, self.prot, self.port] {
            xdr::put_u32(buf, v);
        }
    }

    /// [`Self::ENCODED_LEN`].
    fn encoded_len(&self) -> usize {
        Self::ENCODED_LEN
    }
}

/// Decodes a mapping: `Ok(None)` if `input` ends too early.
impl Decode for Mapping {
    type Error = XdrError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        finish(input, Self::parse(input))
    }
}

/// `rpcb`: an rpcbind v3/v4 registration or query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rpcb {
    prog: u32,
    vers: u32,
    netid: String,
    addr: String,
    owner: String,
}

impl Rpcb {
    /// Builds an `rpcb`; each string is at most [`RPCB_STRING_MAX`] bytes, UTF-8, without NUL.
    pub fn new(
        prog: u32,
        vers: u32,
        netid: &str,
        addr: &str,
        owner: &str,
    ) -> Result<Self, XdrError> {
        xdr::check_string("rpcb.r_netid", netid, RPCB_STRING_MAX)?;
        xdr::check_string("rpcb.r_addr", addr, RPCB_STRING_MAX)?;
        xdr::check_string("rpcb.r_owner", owner, RPCB_STRING_MAX)?;
        Ok(Self {
            prog,
            vers,
            netid: netid.to_owned(),
            addr: addr.to_owned(),
            owner: owner.to_owned(),
        })
    }

    /// Program number.
    #[must_use]
    pub const fn prog(&self) -> u32 {
        self.prog
    }

    /// Program version.
    #[must_use]
    pub const fn vers(&self) -> u32 {
        self.vers
    }

    /// Network id (`"tcp"`, `"udp"`, `"tcp6"`, ...).
    #[must_use]
    pub fn netid(&self) -> &str {
        &self.netid
    }

    /// Universal address (`""` in UNSET and GETADDR queries).
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Owner (libtirpc sends the euid in decimal for SET, `"libtirpc"` for GETADDR).
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Decodes an `rpcb` as a nom parser.
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        (
            xdr::u32,
            xdr::u32,
            xdr::string("rpcb.r_netid", RPCB_STRING_MAX),
            xdr::string("rpcb.r_addr", RPCB_STRING_MAX),
            xdr::string("rpcb.r_owner", RPCB_STRING_MAX),
        )
            .map(|(prog, vers, netid, addr, owner)| Self {
                prog,
                vers,
                netid: netid.to_owned(),
                addr: addr.to_owned(),
                owner: owner.to_owned(),
            })
            .parse(input)
    }
}

impl Encode for Rpcb {
    /// Encodes the `rpcb`.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.prog);
        xdr::put_u32(buf, self.vers);
        xdr::put_string(buf, &self.netid);
        xdr::put_string(buf, &self.addr);
        xdr::put_string(buf, &self.owner);
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        2 * xdr::UNIT
            + xdr::opaque_len(self.netid.len())
            + xdr::opaque_len(self.addr.len())
            + xdr::opaque_len(self.owner.len())
    }
}

/// Decodes an `rpcb`: `Ok(None)` if `input` ends too early.
impl Decode for Rpcb {
    type Error = XdrError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, XdrError> {
        finish(input, Self::parse(input))
    }
}

/// A portmapper v2 call (SET, UNSET or GETPORT) with AUTH_NONE: the bare message.
#[must_use]
pub const fn pmap_call(xid: u32, procedure: u32, mapping: &Mapping) -> Call<&Mapping> {
    Call::new(xid, PMAP_PROG, PMAP_VERS, procedure, mapping)
}

/// An rpcbind v3 or v4 call (SET, UNSET or GETADDR) with AUTH_NONE: the bare message.
#[must_use]
pub const fn rpcb_call(xid: u32, vers: u32, procedure: u32, rpcb: &Rpcb) -> Call<&Rpcb> {
    Call::new(xid, PMAP_PROG, vers, procedure, rpcb)
}

/// Decodes the reply to a SET or UNSET (portmapper or rpcbind): whether it was done.
pub fn decode_bool_reply(msg: &[u8]) -> Result<Option<Reply<bool>>, XdrError> {
    decode_reply(msg, xdr::bool)
}

/// Decodes the reply to PMAPPROC_GETPORT: the port, `None` when the program is not registered.
pub fn decode_getport_reply(msg: &[u8]) -> Result<Option<Reply<Option<u16>>>, XdrError> {
    decode_reply(msg, getport_result)
}

/// `unsigned int port`: 0 for "not registered", otherwise a TCP/UDP port.
fn getport_result(input: &[u8]) -> XdrResult<'_, Option<u16>> {
    cut(map_res(xdr::u32, |port| match u16::try_from(port) {
        Ok(0) => Ok(None),
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(XdrError::InvalidValue {
            what: "PMAPPROC_GETPORT result",
        }),
    }))
    .parse(input)
}

/// Decodes the reply to RPCBPROC_GETADDR: the universal address, `""` when the program is not
/// registered (see [`socket_addr_from_uaddr`]).
pub fn decode_getaddr_reply(msg: &[u8]) -> Result<Option<Reply<String>>, XdrError> {
    decode_reply(msg, getaddr_result)
}

/// `string r_addr<>` (bounded here by [`RPCB_STRING_MAX`]).
fn getaddr_result(input: &[u8]) -> XdrResult<'_, String> {
    xdr::string("RPCBPROC_GETADDR result", RPCB_STRING_MAX)
        .map(str::to_owned)
        .parse(input)
}

/// The universal address of a socket address (RFC 5665): `h1.h2.h3.h4.p1.p2` for IPv4,
/// `IPV6-TEXT.p1.p2` for IPv6 (the scope id is not represented).
#[must_use]
pub fn uaddr_from_socket_addr(addr: &SocketAddr) -> String {
    let [p1, p2] = addr.port().to_be_bytes();
    format!("{}.{p1}.{p2}", addr.ip())
}

/// Parses a universal address of an IPv4 or IPv6 socket address.
///
/// # Errors
/// [`XdrError::InvalidValue`] when `uaddr` is not `host.p1.p2` (RFC 5665's grammar, with a
/// host `IpAddr` reads and two octets `0`-`255`).
pub fn socket_addr_from_uaddr(uaddr: &str) -> Result<SocketAddr, XdrError> {
    match all_consuming(self::uaddr).parse(uaddr) {
        Ok((_, addr)) => Ok(addr),
        Err(_) => Err(XdrError::InvalidValue {
            what: "universal address",
        }),
    }
}

/// A universal address of an IPv4 or IPv6 socket address (RFC 5665 §5.2.3.3, §5.2.3.4):
///
/// ```text
/// uaddr = host "." p1 "." p2        ; port = p1 * 256 + p2
/// host  = IPv4address / IPv6address ; as `IpAddr::from_str` reads them
/// p1 = p2 = 1*3DIGIT                ; 0..=255
/// ```
///
/// The host's own dots make the split point the second dot from the end ([`uaddr_host`]).
fn uaddr(input: &str) -> IResult<&str, SocketAddr, ()> {
    (
        map_res(uaddr_host, IpAddr::from_str),
        preceded(char('.'), uaddr_octet),
        preceded(char('.'), uaddr_octet),
    )
        .map(|(ip, p1, p2)| SocketAddr::new(ip, u16::from_be_bytes([p1, p2])))
        .parse(input)
}

/// `host`: everything before the second dot from the end (a complete-input parser; without
/// two dots there is no host).
fn uaddr_host(input: &str) -> IResult<&str, &str, ()> {
    let end = input
        .rfind('.')
        .and_then(|last| input[..last].rfind('.'))
        .ok_or(nom::Err::Error(()))?;
    Ok((&input[end..], &input[..end]))
}

/// `p1` or `p2`: `1*3DIGIT`, 0..=255.
fn uaddr_octet(input: &str) -> IResult<&str, u8, ()> {
    map_res(
        verify(digit1, |digits: &str| digits.len() <= 3),
        u8::from_str,
    )
    .parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    #[test]
    fn uaddr_ipv4_and_ipv6() {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 111));
        assert_eq!(uaddr_from_socket_addr(&v4), "127.0.0.1.0.111");
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 58085));
        assert_eq!(uaddr_from_socket_addr(&v6), "::1.226.229");
        assert_eq!(socket_addr_from_uaddr("::1.226.229"), Ok(v6));
        assert_eq!(socket_addr_from_uaddr("0::0.0.111").unwrap().port(), 111);
        let mapped = "::ffff:10.0.0.1.1.2";
        let a = socket_addr_from_uaddr(mapped).unwrap();
        assert_eq!(a.port(), 258);
        assert_eq!(uaddr_from_socket_addr(&a), mapped);
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1.0",
            "127.0.0.1.256.1",
            "127.0.0.1.+1.1",
            "x.1.1",
            "127.0.0.1..1",
            "1.2.3.4.5.6.7",
        ] {
            assert!(socket_addr_from_uaddr(bad).is_err(), "{bad}");
        }
    }

    /// The parser `socket_addr_from_uaddr` had before issue 13: split at the last two dots.
    fn split_uaddr(uaddr: &str) -> Option<SocketAddr> {
        let mut parts = uaddr.rsplitn(3, '.');
        let (p2, p1, host) = (parts.next()?, parts.next()?, parts.next()?);
        let octet = |s: &str| {
            if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u8>().ok()
        };
        let port = u16::from_be_bytes([octet(p1)?, octet(p2)?]);
        Some(SocketAddr::new(host.parse().ok()?, port))
    }

    fn any_socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, p)| {
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), p, 0, 0))
            }),
        ]
    }

    fn any_rpcb() -> impl Strategy<Value = Rpcb> {
        let s = || proptest::string::string_regex("[a-z0-9.:]{0,40}").unwrap();
        (any::<u32>(), any::<u32>(), s(), s(), s())
            .prop_map(|(p, v, n, a, o)| Rpcb::new(p, v, &n, &a, &o).unwrap())
    }

    proptest! {
        #[test]
        fn uaddr_round_trip(addr in any_socket_addr()) {
            prop_assert_eq!(socket_addr_from_uaddr(&uaddr_from_socket_addr(&addr)), Ok(addr));
        }

        /// The nom parser takes the decisions of the split-based parser it replaced, on text
        /// near the grammar (digits, dots, colons, hex letters, the odd sign or space).
        #[test]
        fn uaddr_agrees_with_a_split_from_the_right(
            text in "[0-9.:af+ ]{0,24}|([0-9]{1,3}[.]){5}[0-9]{1,4}|::[0-9]{1,4}([.][0-9]{0,4}){2}",
        ) {
            prop_assert_eq!(socket_addr_from_uaddr(&text).ok(), split_uaddr(&text));
        }

        #[test]
        fn mapping_round_trip(prog in any::<u32>(), vers in any::<u32>(), prot in any::<u32>(), port in any::<u32>()) {
            let m = Mapping { prog, vers, prot, port };
            let mut buf = Vec::new();
            m.encode(&mut buf);
            prop_assert_eq!(buf.len(), Mapping::ENCODED_LEN);
            prop_assert_eq!(Mapping::decode(&buf), Ok(Some((m, buf.len()))));
            for cut in 0..buf.len() {
                prop_assert_eq!(Mapping::decode(&buf[..cut]), Ok(None));
            }
        }

        #[test]
        fn rpcb_round_trip(r in any_rpcb()) {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            prop_assert_eq!(buf.len(), r.encoded_len());
            prop_assert_eq!(Rpcb::decode(&buf), Ok(Some((r.clone(), buf.len()))));
            for cut in 0..buf.len() {
                prop_assert_eq!(Rpcb::decode(&buf[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn rpcb_bounds() {
        assert!(Rpcb::new(1, 1, &"t".repeat(256), "", "").is_err());
        assert!(Rpcb::new(1, 1, "tcp", "", &"o".repeat(255)).is_ok());
    }
}

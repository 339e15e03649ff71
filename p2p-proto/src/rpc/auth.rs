//! ONC RPC authentication (RFC 5531 §8.2, §9, §10), named as in the RFC.
//!
//! ```text
//! struct opaque_auth { auth_flavor flavor; opaque body<400>; };
//! struct authsys_parms { unsigned int stamp; string machinename<255>; unsigned int uid;
//!     unsigned int gid; unsigned int gids<16>; };
//! enum auth_stat { AUTH_OK = 0, AUTH_BADCRED = 1, ... };
//! ```

use bytes::{BufMut, Bytes};
use nom::Parser;
use nom::combinator::{cut, map_res};
use nom::multi::length_count;

use crate::codec::Encode;
use crate::xdr::{self, XdrError, XdrResult};

/// `MAX_AUTH_BYTES`: bound of an `opaque_auth` body.
pub const MAX_AUTH_BYTES: u32 = 400;

/// Bound of `authsys_parms.machinename`.
pub const MAX_MACHINE_NAME: u32 = 255;

/// Bound of `authsys_parms.gids`.
pub const MAX_GIDS: u32 = 16;

/// `auth_flavor` AUTH_NONE.
pub const AUTH_NONE: u32 = 0;

/// `auth_flavor` AUTH_SYS (also known as AUTH_UNIX).
pub const AUTH_SYS: u32 = 1;

/// `opaque_auth`: a credential or verifier, flavor and body (at most [`MAX_AUTH_BYTES`]).
///
/// Messages keep the body opaque, as libtirpc does when it reads a call; [`OpaqueAuth::credentials`]
/// interprets AUTH_NONE and AUTH_SYS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueAuth {
    flavor: u32,
    body: Bytes,
}

impl OpaqueAuth {
    /// AUTH_NONE with an empty body: what this crate sends as credential and verifier.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            flavor: AUTH_NONE,
            body: Bytes::new(),
        }
    }

    /// Any flavor and body; the body must be at most [`MAX_AUTH_BYTES`] long.
    pub fn new(flavor: u32, body: impl Into<Bytes>) -> Result<Self, XdrError> {
        let body = body.into();
        if body.len() > MAX_AUTH_BYTES as usize {
            return Err(XdrError::TooLong {
                what: "opaque_auth.body",
                len: body.len() as u64,
                max: MAX_AUTH_BYTES,
            });
        }
        Ok(Self { flavor, body })
    }

    /// AUTH_SYS credentials (always within the bound: an `authsys_parms` is at most 340 bytes).
    #[must_use]
    pub fn sys(params: &AuthSysParams) -> Self {
        let mut body = Vec::with_capacity(params.encoded_len());
        params.encode(&mut body);
        Self {
            flavor: AUTH_SYS,
            body: body.into(),
        }
    }

    /// The flavor.
    #[must_use]
    pub const fn flavor(&self) -> u32 {
        self.flavor
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Interprets the credentials as a libtirpc server does: AUTH_NONE accepted whatever its body,
    /// AUTH_SYS accepted when its body parses (else `AUTH_BADCRED`), other flavors unknown here.
    pub fn credentials(&self) -> Result<Credentials, AuthStat> {
        match self.flavor {
            AUTH_NONE => Ok(Credentials::None),
            AUTH_SYS => match AuthSysParams::parse(&self.body) {
                // Trailing bytes inside the body are tolerated, as libtirpc does.
                Ok((_, params)) => Ok(Credentials::Sys(params)),
                Err(_) => Err(AuthStat::BadCred),
            },
            flavor => Ok(Credentials::Other { flavor }),
        }
    }

    /// Decodes an `opaque_auth`, refusing a body over [`MAX_AUTH_BYTES`].
    ///
    /// ```text
    /// struct opaque_auth { auth_flavor flavor; opaque body<400>; };
    /// ```
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        (xdr::u32, xdr::opaque("opaque_auth.body", MAX_AUTH_BYTES))
            .map(|(flavor, body)| Self {
                flavor,
                body: Bytes::copy_from_slice(body),
            })
            .parse(input)
    }
}

impl Encode for OpaqueAuth {
    /// Encodes `flavor` and `body`.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.flavor);
        xdr::put_opaque(buf, &self.body);
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        xdr::UNIT + xdr::opaque_len(self.body.len())
    }
}

/// Credentials as interpreted by [`OpaqueAuth::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// AUTH_NONE.
    None,
    /// AUTH_SYS.
    Sys(AuthSysParams),
    /// A flavor this crate does not interpret (a libtirpc server answers `AUTH_REJECTEDCRED`).
    Other {
        /// The flavor.
        flavor: u32,
    },
}

/// `authsys_parms`: the body of AUTH_SYS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSysParams {
    stamp: u32,
    machinename: Bytes,
    uid: u32,
    gid: u32,
    gids: Vec<u32>,
}

impl AuthSysParams {
    /// Builds AUTH_SYS parameters: at most [`MAX_MACHINE_NAME`] bytes of machine name and
    /// [`MAX_GIDS`] supplementary groups.
    pub fn new(
        stamp: u32,
        machinename: impl Into<Bytes>,
        uid: u32,
        gid: u32,
        gids: Vec<u32>,
    ) -> Result<Self, XdrError> {
        let machinename = machinename.into();
        if machinename.len() > MAX_MACHINE_NAME as usize {
            return Err(XdrError::TooLong {
                what: "authsys_parms.machinename",
                len: machinename.len() as u64,
                max: MAX_MACHINE_NAME,
            });
        }
        if gids.len() > MAX_GIDS as usize {
            return Err(XdrError::TooLong {
                what: "authsys_parms.gids",
                len: gids.len() as u64,
                max: MAX_GIDS,
            });
        }
        Ok(Self {
            stamp,
            machinename,
            uid,
            gid,
            gids,
        })
    }

    /// An arbitrary id chosen by the caller.
    #[must_use]
    pub const fn stamp(&self) -> u32 {
        self.stamp
    }

    /// The caller's machine name (bytes; normally ASCII).
    #[must_use]
    pub fn machinename(&self) -> &[u8] {
        &self.machinename
    }

    /// Effective user id.
    #[must_use]
    pub const fn uid(&self) -> u32 {
        self.uid
    }

    /// Effective group id.
    #[must_use]
    pub const fn gid(&self) -> u32 {
        self.gid
    }

    /// Supplementary group ids.
    #[must_use]
    pub fn gids(&self) -> &[u32] {
        &self.gids
    }

    /// Decodes the parameters, refusing over-long machine names and gid lists (a gid count
    /// over [`MAX_GIDS`] before any gid is read).
    ///
    /// ```text
    /// struct authsys_parms { unsigned int stamp; string machinename<255>; unsigned int uid;
    ///     unsigned int gid; unsigned int gids<16>; };
    /// ```
    pub(crate) fn parse(input: &[u8]) -> XdrResult<'_, Self> {
        let gid_count = cut(map_res(xdr::u32, |count| {
            if count > MAX_GIDS {
                Err(XdrError::TooLong {
                    what: "authsys_parms.gids",
                    len: u64::from(count),
                    max: MAX_GIDS,
                })
            } else {
                Ok(count)
            }
        }));
        (
            xdr::u32,
            xdr::opaque("authsys_parms.machinename", MAX_MACHINE_NAME),
            xdr::u32,
            xdr::u32,
            length_count(gid_count, xdr::u32),
        )
            .map(|(stamp, machinename, uid, gid, gids)| Self {
                stamp,
                machinename: Bytes::copy_from_slice(machinename),
                uid,
                gid,
                gids,
            })
            .parse(input)
    }
}

impl Encode for AuthSysParams {
    /// Encodes the parameters.
    fn encode(&self, buf: &mut impl BufMut) {
        xdr::put_u32(buf, self.stamp);
        xdr::put_opaque(buf, &self.machinename);
        xdr::put_u32(buf, self.uid);
        xdr::put_u32(buf, self.gid);
        // At most MAX_GIDS, so the count fits.
        xdr::put_u32(buf, self.gids.len() as u32);
        for gid in &self.gids {
            xdr::put_u32(buf, *gid);
        }
    }

    /// Encoded size in bytes.
    fn encoded_len(&self) -> usize {
        xdr::UNIT * 4 + xdr::opaque_len(self.machinename.len()) + xdr::UNIT * self.gids.len()
    }
}

/// `auth_stat`: why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStat {
    /// AUTH_OK (0).
    Ok,
    /// AUTH_BADCRED (1): bad credential (seal broken).
    BadCred,
    /// AUTH_REJECTEDCRED (2): client must begin new session.
    RejectedCred,
    /// AUTH_BADVERF (3): bad verifier (seal broken).
    BadVerf,
    /// AUTH_REJECTEDVERF (4): verifier expired or replayed.
    RejectedVerf,
    /// AUTH_TOOWEAK (5): rejected for security reasons.
    TooWeak,
    /// AUTH_INVALIDRESP (6): bogus response verifier.
    InvalidResp,
    /// AUTH_FAILED (7): reason unknown.
    Failed,
    /// RPCSEC_GSS_CREDPROBLEM (13).
    RpcsecGssCredProblem,
    /// RPCSEC_GSS_CTXPROBLEM (14).
    RpcsecGssCtxProblem,
}

impl AuthStat {
    pub(crate) const ALL: [(Self, u32); 10] = [
        (Self::Ok, 0),
        (Self::BadCred, 1),
        (Self::RejectedCred, 2),
        (Self::BadVerf, 3),
        (Self::RejectedVerf, 4),
        (Self::TooWeak, 5),
        (Self::InvalidResp, 6),
        (Self::Failed, 7),
        (Self::RpcsecGssCredProblem, 13),
        (Self::RpcsecGssCtxProblem, 14),
    ];

    /// The wire value.
    #[must_use]
    pub fn code(self) -> u32 {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(7, |(_, c)| *c)
    }

    /// The status for a wire value, if known.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
    }
}

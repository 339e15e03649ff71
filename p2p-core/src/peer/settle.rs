//! Settling a state-changing operation whose reply never arrived.
//!
//! When the request may have reached the directory (anything but a failure
//! to connect: see [`ClientError::may_have_taken_effect`]) the reply may have
//! been lost after the operation took effect. The peer then asks the
//! directory with a read that shows the state, before it reports, so that
//! its own state (the transfer listener, the library) follows the
//! directory's instead of splitting from it.

use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PublishResult, Reply, Request, RequestBody,
};
use p2p_proto::field::{FileName, UserName};
use p2p_proto::timestamp::Timestamp;

use super::client::{ClientError, DirectoryClient};

/// What the directory shows about an operation whose reply was lost.
#[derive(Debug)]
#[non_exhaustive]
pub enum Settled {
    /// It took effect: the reply it would have sent.
    TookEffect(Reply),
    /// It did not take effect.
    DidNot,
    /// The directory could not be asked either.
    Unknown(ClientError),
}

impl Settled {
    /// The reply to report for an operation that ended with `error`: the
    /// reply it had when it took effect, else the error.
    pub fn into_reply(self, error: ClientError) -> Result<Reply, ClientError> {
        match self {
            Self::TookEffect(reply) => Ok(reply),
            Self::DidNot | Self::Unknown(_) => Err(error),
        }
    }

    /// A sentence for the console (stderr) saying what was found.
    pub fn explain(&self, op: &str) -> String {
        match self {
            Self::TookEffect(_) => {
                format!("{op}: the reply was lost, but the directory shows that {op} took effect")
            }
            Self::DidNot => {
                format!(
                    "{op}: the reply was lost; the directory shows that {op} did not take effect"
                )
            }
            Self::Unknown(e) => {
                format!(
                    "{op}: the reply was lost and the directory cannot be asked ({e}); the outcome is unknown"
                )
            }
        }
    }
}

/// What the directory shows about `request` (CONNECT, DISCONNECT, PUBLISH or DELETE), whose
/// reply was lost; `get_user_info` when the server is known to accept GET_USER_INFO. Other
/// operations change nothing the peer keeps: [`Settled::DidNot`] without asking.
pub async fn lost_reply(
    client: &DirectoryClient,
    request: &Request,
    get_user_info: bool,
) -> Settled {
    let (timestamp, user) = (request.timestamp, &request.user);
    match &request.body {
        RequestBody::Connect { port } => {
            connect(client, timestamp, user, port.get(), get_user_info).await
        }
        RequestBody::Disconnect => disconnect(client, timestamp, user, get_user_info).await,
        RequestBody::Publish { file, .. } => publish(client, timestamp, user, file).await,
        RequestBody::Delete { file } => delete(client, timestamp, user, file).await,
        _ => Settled::DidNot,
    }
}

/// After a `CONNECT` of `user` with its listener on `port` got no reply: is
/// the user connected, at that port? With `get_user_info` (PROTOCOL.md §6)
/// the recorded port is checked; without it, a `LIST_USERS` that answers
/// (it answers only a connected user) is taken as the CONNECT's effect.
pub async fn connect(
    client: &DirectoryClient,
    timestamp: Option<Timestamp>,
    user: &UserName,
    port: u16,
    get_user_info: bool,
) -> Settled {
    let ask = |body| Request {
        timestamp,
        user: user.clone(),
        body,
    };
    let connected = if get_user_info {
        let reply = client
            .call(&ask(RequestBody::GetUserInfo {
                target: user.clone(),
            }))
            .await;
        match reply {
            Ok(Reply::GetUserInfo(GetUserInfoReply::Ok(addr))) => addr.port == port,
            Ok(_) => false,
            Err(e) => return Settled::Unknown(e),
        }
    } else {
        match client.call(&ask(RequestBody::ListUsers)).await {
            Ok(Reply::ListUsers(ListUsersReply::Ok(_))) => true,
            Ok(_) => false,
            Err(e) => return Settled::Unknown(e),
        }
    };
    if connected {
        Settled::TookEffect(Reply::Connect(ConnectResult::Ok))
    } else {
        Settled::DidNot
    }
}

/// After a `PUBLISH` of `file` by `user` got no reply: does the directory
/// list the file as the user's?
pub async fn publish(
    client: &DirectoryClient,
    timestamp: Option<Timestamp>,
    user: &UserName,
    file: &FileName,
) -> Settled {
    match own_files(client, timestamp, user).await {
        Ok(Some(files)) if files.contains(file) => {
            Settled::TookEffect(Reply::Publish(PublishResult::Ok))
        }
        Ok(_) => Settled::DidNot,
        Err(e) => Settled::Unknown(e),
    }
}

/// After a `DISCONNECT` of `user` got no reply: is the user still
/// connected? (GET_USER_INFO or LIST_USERS answer "not connected" once it
/// took effect.)
pub async fn disconnect(
    client: &DirectoryClient,
    timestamp: Option<Timestamp>,
    user: &UserName,
    get_user_info: bool,
) -> Settled {
    let body = if get_user_info {
        RequestBody::GetUserInfo {
            target: user.clone(),
        }
    } else {
        RequestBody::ListUsers
    };
    let request = Request {
        timestamp,
        user: user.clone(),
        body,
    };
    match client.call(&request).await {
        Ok(
            Reply::GetUserInfo(GetUserInfoReply::NotConnected)
            | Reply::ListUsers(ListUsersReply::NotConnected),
        ) => Settled::TookEffect(Reply::Disconnect(DisconnectResult::Ok)),
        Ok(_) => Settled::DidNot,
        Err(e) => Settled::Unknown(e),
    }
}

/// After a `DELETE` of `file` by `user` got no reply: is the file still
/// listed as the user's?
pub async fn delete(
    client: &DirectoryClient,
    timestamp: Option<Timestamp>,
    user: &UserName,
    file: &FileName,
) -> Settled {
    match own_files(client, timestamp, user).await {
        Ok(Some(files)) if !files.contains(file) => {
            Settled::TookEffect(Reply::Delete(DeleteResult::Ok))
        }
        Ok(_) => Settled::DidNot,
        Err(e) => Settled::Unknown(e),
    }
}

/// The files the directory lists as `user`'s own (LIST_CONTENT of itself);
/// `None` when it answers anything else (not connected, say).
async fn own_files(
    client: &DirectoryClient,
    timestamp: Option<Timestamp>,
    user: &UserName,
) -> Result<Option<Vec<FileName>>, ClientError> {
    let request = Request {
        timestamp,
        user: user.clone(),
        body: RequestBody::ListContent {
            target: user.clone(),
        },
    };
    Ok(match client.call(&request).await? {
        Reply::ListContent(ListContentReply::Ok(files)) => Some(files),
        _ => None,
    })
}

//! The peer's interactive shell (PROTOCOL.md §5).
//!
//! [`Session`] executes one command line and returns the lines to print, so
//! the shell logic is testable without a terminal; [`run_shell`] feeds it from
//! a terminal (rustyline: line editing, history, the `c> ` prompt) or from
//! piped stdin (no prompt; EOF acts like `QUIT`).

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::time::Duration;

use p2p_proto::directory::{
    CapabilitiesReply, GetUserInfoReply, ListContentReply, ListUsersReply, OpCode, PeerAddr,
    PingResult, Reply, Request, RequestBody, SearchQuery, SearchReply,
};
use p2p_proto::field::{Description, FileName, UserName};
use tokio::sync::mpsc;

use super::client::{ClientError, DirectoryClient};
use super::download::{DownloadError, DownloadOptions, Downloader, TransferProtocol};
use super::file_server::{FileServer, FileServerConfig, Library};
use super::settle;
use super::state::{DIGESTS_FILE, DigestCache, StateDir};
use crate::console::{Command, PEER_PROMPT, QUIT_USAGE, SEARCH_NOT_SUPPORTED, unknown_command};
use crate::datetime::DatetimeClient;

/// PROTOCOL.md §6.3: a connected peer pings every 30 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// What the peer needs to know.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The directory server's host.
    pub server_host: String,
    /// The directory server's port.
    pub server_port: u16,
    /// The datetime service's URL.
    pub datetime_url: String,
    /// Where the transfer listener binds (port 0 = any free port). Default
    /// `0.0.0.0:0`.
    pub listen: SocketAddr,
    /// Send only PROTOCOL.md §1's classic operations (no CAPABILITIES,
    /// SEARCH, PING or GET_USER_INFO): some classic servers crash on an
    /// unknown OP. Default false.
    pub classic: bool,
    /// How often a connected peer sends PING to a server that lists it.
    /// Default 30 s (PROTOCOL.md §6.3).
    pub ping_interval: Duration,
    /// The state directory (digests of published files); `None` keeps them in
    /// memory only. Default [`super::state::default_state_dir`].
    pub state_dir: Option<PathBuf>,
    /// Timeout of a directory operation: to connect, to send, and the idle
    /// timeout of the reply. Default 10 s
    /// ([`super::client::DEFAULT_OPERATION_TIMEOUT`]).
    pub operation_timeout: Duration,
    /// TCP congestion control for the transfers this peer serves (Linux
    /// `TCP_CONGESTION`, e.g. `bbr`); `None` keeps the system's. Default
    /// `None`.
    pub congestion: Option<String>,
}

impl PeerConfig {
    /// A configuration with the default datetime URL and listener.
    pub fn new(server_host: impl Into<String>, server_port: u16) -> Self {
        Self {
            server_host: server_host.into(),
            server_port,
            datetime_url: crate::datetime::DEFAULT_DATETIME_URL.to_owned(),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            classic: false,
            ping_interval: DEFAULT_PING_INTERVAL,
            state_dir: super::state::default_state_dir(),
            operation_timeout: super::client::DEFAULT_OPERATION_TIMEOUT,
            congestion: None,
        }
    }
}

/// One line of shell output: a result (`c> TEXT`) or a listing entry
/// (`\tENTRY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A command's result text, printed after the `c> ` prefix.
    Result(String),
    /// One entry of a listing, printed after a tab.
    Entry(String),
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Result(text) => write!(f, "{PEER_PROMPT}{text}"),
            Self::Entry(text) => write!(f, "\t{text}"),
        }
    }
}

/// What a command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Empty,
    Quit,
    Register(UserName),
    Unregister(UserName),
    Connect(UserName),
    Disconnect(UserName),
    Publish(FileName, Description),
    Delete(FileName),
    ListUsers,
    ListContent(UserName),
    GetFile(UserName, FileName, PathBuf),
    Search(SearchQuery),
}

/// Parses one command line, or returns the text to print instead.
fn parse(line: &str) -> Result<Line, String> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (trimmed, ""),
    };
    if word.is_empty() {
        return Ok(Line::Empty);
    }
    let args: Vec<&str> = rest.split_whitespace().collect();
    let usage = |command: Command| command.usage().to_owned();
    let user = |command: Command| -> Result<UserName, String> {
        match args.as_slice() {
            [name] => name.parse().map_err(|_| usage(command)),
            _ => Err(usage(command)),
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "QUIT" if args.is_empty() => Ok(Line::Quit),
        "QUIT" => Err(QUIT_USAGE.to_owned()),
        "REGISTER" => user(Command::Register).map(Line::Register),
        "UNREGISTER" => user(Command::Unregister).map(Line::Unregister),
        "CONNECT" => user(Command::Connect).map(Line::Connect),
        "DISCONNECT" => user(Command::Disconnect).map(Line::Disconnect),
        "LIST_CONTENT" => user(Command::ListContent).map(Line::ListContent),
        "LIST_USERS" if args.is_empty() => Ok(Line::ListUsers),
        "LIST_USERS" => Err(usage(Command::ListUsers)),
        "DELETE" => match args.as_slice() {
            [file] => file
                .parse()
                .map(Line::Delete)
                .map_err(|_| usage(Command::Delete)),
            _ => Err(usage(Command::Delete)),
        },
        "PUBLISH" => {
            // The description is the rest of the line after the file name.
            let (file, description) = match rest.split_once(char::is_whitespace) {
                Some((file, description)) => (file, description.trim()),
                None => (rest, ""),
            };
            if file.is_empty() || description.is_empty() {
                return Err(usage(Command::Publish));
            }
            match (file.parse(), description.parse()) {
                (Ok(file), Ok(description)) => Ok(Line::Publish(file, description)),
                _ => Err(usage(Command::Publish)),
            }
        }
        // The query is the rest of the line, as typed (the server splits it).
        "SEARCH" if args.is_empty() => Err(usage(Command::Search)),
        "SEARCH" => rest
            .parse()
            .map(Line::Search)
            .map_err(|_| usage(Command::Search)),
        "GET_FILE" => match args.as_slice() {
            [user, remote, local] => match (user.parse(), remote.parse()) {
                (Ok(user), Ok(remote)) => Ok(Line::GetFile(user, remote, PathBuf::from(local))),
                _ => Err(usage(Command::GetFile)),
            },
            _ => Err(usage(Command::GetFile)),
        },
        _ => Err(unknown_command(word)),
    }
}

/// The connected user, its transfer listener, and its PING loop when the
/// server lists PING.
#[derive(Debug)]
struct Connected {
    user: UserName,
    server: FileServer,
    pinger: Option<tokio::task::JoinHandle<()>>,
}

/// The extension operations the server accepts (PROTOCOL.md §6.1), as far
/// as this session knows.
#[derive(Clone, Copy, Debug, Default)]
struct Extensions {
    get_user_info: bool,
    search: bool,
    ping: bool,
}

impl Extensions {
    fn of(reply: &CapabilitiesReply) -> Self {
        Self {
            get_user_info: reply.supports(OpCode::GetUserInfo),
            search: reply.supports(OpCode::Search),
            ping: reply.supports(OpCode::Ping),
        }
    }
}

/// The shell's state between commands.
#[derive(Debug)]
pub struct Session {
    client: DirectoryClient,
    datetime: DatetimeClient,
    listen: SocketAddr,
    congestion: Option<String>,
    downloader: Downloader,
    state: Option<StateDir>,
    server_host: String,
    server_port: u16,
    connected: Option<Connected>,
    /// Each user's published files, kept across DISCONNECT/CONNECT like the
    /// directory keeps the publications.
    libraries: std::collections::HashMap<UserName, Library>,
    ping_interval: Duration,
    /// The server's extensions once asked (once per session).
    extensions: Option<Extensions>,
}

impl Session {
    /// A session with no user connected.
    pub fn new(config: &PeerConfig) -> Self {
        let mut download = DownloadOptions::default();
        if config.classic {
            // A classic peer network: plain GET_FILE only (no digest, no resume).
            download.protocol = TransferProtocol::Classic;
        }
        Self {
            client: DirectoryClient::new(&config.server_host, config.server_port)
                .with_timeout(config.operation_timeout),
            datetime: DatetimeClient::new(config.datetime_url.clone()),
            listen: config.listen,
            congestion: config.congestion.clone(),
            downloader: Downloader::new(download),
            state: config.state_dir.clone().map(StateDir::new),
            server_host: config.server_host.clone(),
            server_port: config.server_port,
            connected: None,
            libraries: std::collections::HashMap::new(),
            ping_interval: config.ping_interval,
            // --classic: known to have none, never asked.
            extensions: config.classic.then(Extensions::default),
        }
    }

    /// The server's extensions: asked with CAPABILITIES before the first
    /// operation that could use one, and remembered for the session. A
    /// server that closes without a reply has none; one that cannot be
    /// reached is asked again next time.
    async fn extensions(&mut self) -> Extensions {
        if let Some(known) = self.extensions {
            return known;
        }
        match self.client.capabilities().await {
            Ok(reply) => {
                let known = reply.as_ref().map(Extensions::of).unwrap_or_default();
                self.extensions = Some(known);
                known
            }
            Err(e) => {
                tracing::debug!(error = %e, "CAPABILITIES failed; asking again later");
                Extensions::default()
            }
        }
    }

    /// The user this shell acts as, if any.
    pub fn connected_user(&self) -> Option<&UserName> {
        self.connected.as_ref().map(|c| &c.user)
    }

    /// Executes one command line. Returns the lines to print and whether the
    /// shell should end (`QUIT`).
    pub async fn execute(&mut self, line: &str) -> (Vec<Output>, bool) {
        let parsed = match parse(line) {
            Ok(parsed) => parsed,
            Err(text) => return (vec![Output::Result(text)], false),
        };
        let out = match parsed {
            Line::Empty => vec![],
            Line::Quit => {
                self.quit().await;
                return (vec![], true);
            }
            Line::Register(user) => {
                let reply = self.call(user, RequestBody::Register).await;
                vec![Output::Result(text_of(Command::Register, &reply))]
            }
            Line::Unregister(user) => self.unregister(user).await,
            Line::Connect(user) => self.connect(user).await,
            Line::Disconnect(user) => self.disconnect(user).await,
            Line::Publish(file, description) => self.publish(file, description).await,
            Line::Delete(file) => self.delete(file).await,
            Line::ListUsers => self.list_users().await,
            Line::ListContent(target) => self.list_content(target).await,
            Line::GetFile(user, remote, local) => self.get_file(user, remote, local).await,
            Line::Search(query) => self.search(query).await,
        };
        (out, false)
    }

    /// Disconnects the connected user, if any (`QUIT`, end of input).
    pub async fn quit(&mut self) {
        if let Some(user) = self.connected_user().cloned() {
            let _ = self.disconnect(user).await;
        }
    }

    async fn call(&self, user: UserName, body: RequestBody) -> Result<Reply, ClientError> {
        let timestamp = Some(self.datetime.now().await);
        let request = Request {
            timestamp,
            user,
            body,
        };
        let result = self.client.call(&request).await;
        if let Err(e) = &result {
            eprintln!("{}: {e}", request.op());
        }
        result
    }

    /// `reply` to `body` as `user`, or, when it was lost after the request may
    /// have arrived, what the directory shows (peer/settle.rs), said on stderr.
    async fn settle(
        &mut self,
        user: &UserName,
        body: RequestBody,
        reply: Result<Reply, ClientError>,
    ) -> Result<Reply, ClientError> {
        match reply {
            Err(e) if e.may_have_taken_effect() => {
                // Extensions as far as known: no CAPABILITIES round trip to a hung server.
                let get_user_info = self.extensions.is_some_and(|x| x.get_user_info);
                let request = Request {
                    timestamp: Some(self.datetime.now().await),
                    user: user.clone(),
                    body,
                };
                let settled = settle::lost_reply(&self.client, &request, get_user_info).await;
                eprintln!("{}", settled.explain(request.op().as_str()));
                settled.into_reply(e)
            }
            other => other,
        }
    }

    async fn unregister(&mut self, user: UserName) -> Vec<Output> {
        let reply = self.call(user.clone(), RequestBody::Unregister).await;
        if reply.as_ref().is_ok_and(|r| r.code() == 0) {
            self.release(&user).await;
            self.libraries.remove(&user);
        }
        vec![Output::Result(text_of(Command::Unregister, &reply))]
    }

    async fn connect(&mut self, user: UserName) -> Vec<Output> {
        if let Some(current) = self.connected_user().cloned() {
            if current == user {
                // Let the server say it: USER ALREADY CONNECTED.
                let port = self
                    .connected
                    .as_ref()
                    .map_or(0, |c| c.server.local_addr().port());
                let Some(port) = NonZeroU16::new(port) else {
                    return vec![Output::Result(Command::Connect.fail().to_owned())];
                };
                let reply = self.call(user, RequestBody::Connect { port }).await;
                return vec![Output::Result(text_of(Command::Connect, &reply))];
            }
            // Connecting as another user disconnects the current one first.
            let _ = self.disconnect(current).await;
        }
        if !self.libraries.contains_key(&user) {
            let library = Library::with_digests(self.digest_cache(&user).await);
            self.libraries.insert(user.clone(), library);
        }
        let library = self.libraries.get(&user).cloned().unwrap_or_default();
        let config = FileServerConfig {
            bind: self.listen,
            congestion: self.congestion.clone(),
            ..FileServerConfig::default()
        };
        let server = match FileServer::start(config, library).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!(
                    "CONNECT: cannot start the transfer listener on {}: {e}",
                    self.listen
                );
                return vec![Output::Result(Command::Connect.fail().to_owned())];
            }
        };
        let Some(port) = NonZeroU16::new(server.local_addr().port()) else {
            server.stop().await;
            return vec![Output::Result(Command::Connect.fail().to_owned())];
        };
        let reply = self.call(user.clone(), RequestBody::Connect { port }).await;
        let reply = self
            .settle(&user, RequestBody::Connect { port }, reply)
            .await;
        if reply.as_ref().is_ok_and(|r| r.code() == 0) {
            let pinger = if self.extensions().await.ping {
                Some(tokio::spawn(ping_loop(
                    self.client.clone(),
                    self.datetime.clone(),
                    user.clone(),
                    self.ping_interval,
                )))
            } else {
                None
            };
            self.connected = Some(Connected {
                user,
                server,
                pinger,
            });
        } else {
            server.stop().await;
        }
        vec![Output::Result(text_of(Command::Connect, &reply))]
    }

    /// The digests of `user`'s files, from the state directory when there is one.
    async fn digest_cache(&self, user: &UserName) -> DigestCache {
        let Some(state) = &self.state else {
            return DigestCache::in_memory();
        };
        let file = state
            .user_dir(&self.server_host, self.server_port, user)
            .join(DIGESTS_FILE);
        let shown = file.display().to_string();
        match tokio::task::spawn_blocking(move || DigestCache::load(file)).await {
            Ok(Ok(cache)) => cache,
            Ok(Err(e)) => {
                eprintln!("CONNECT: cannot read {shown}: {e}; digests stay in memory");
                DigestCache::in_memory()
            }
            Err(_) => DigestCache::in_memory(),
        }
    }

    async fn disconnect(&mut self, user: UserName) -> Vec<Output> {
        let reply = self.call(user.clone(), RequestBody::Disconnect).await;
        let reply = self.settle(&user, RequestBody::Disconnect, reply).await;
        // The listener stops whenever this shell stops acting as that user:
        // on success, and also when the server no longer knows the user as
        // connected.
        if matches!(&reply, Ok(r) if r.code() <= 2) {
            self.release(&user).await;
        }
        vec![Output::Result(text_of(Command::Disconnect, &reply))]
    }

    /// Stops acting as `user` if this shell is connected as it: the transfer
    /// listener stops.
    async fn release(&mut self, user: &UserName) {
        if self.connected_user() == Some(user)
            && let Some(connected) = self.connected.take()
        {
            if let Some(pinger) = connected.pinger {
                pinger.abort();
            }
            connected.server.stop().await;
        }
    }

    /// The connected user and its library, or the command's NOT CONNECTED text.
    fn acting(&self, command: Command) -> Result<(UserName, Library), Vec<Output>> {
        match &self.connected {
            Some(c) => Ok((
                c.user.clone(),
                self.libraries.get(&c.user).cloned().unwrap_or_default(),
            )),
            None => Err(vec![Output::Result(command.not_connected().to_owned())]),
        }
    }

    async fn publish(&mut self, file: FileName, description: Description) -> Vec<Output> {
        let (user, library) = match self.acting(Command::Publish) {
            Ok(acting) => acting,
            Err(out) => return out,
        };
        // Publish only what can be served: the file's absolute path now.
        let path = match std::fs::canonicalize(file.as_str()) {
            Ok(path) if path.is_file() => path,
            Ok(path) => {
                eprintln!("PUBLISH: {} is not a regular file", path.display());
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
            Err(e) => {
                eprintln!("PUBLISH: {file}: {e}");
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
        };
        // The digest other peers verify (§6.4): hashed now unless the state
        // directory already has it for this size and modification time.
        let digests = library.digests().clone();
        let hashed_path = path.clone();
        let hashed = tokio::task::spawn_blocking(move || digests.digest_of(&hashed_path)).await;
        match hashed {
            Ok(Ok((digest, size, source))) => {
                tracing::debug!(path = %path.display(), size, %digest, ?source, "digest at PUBLISH");
            }
            Ok(Err(e)) => {
                eprintln!("PUBLISH: cannot hash {}: {e}", path.display());
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
            Err(e) => {
                eprintln!("PUBLISH: {e}");
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
        }
        let body = RequestBody::Publish {
            file: file.clone(),
            description,
        };
        let reply = self.call(user.clone(), body.clone()).await;
        let reply = self.settle(&user, body, reply).await;
        if reply.as_ref().is_ok_and(|r| r.code() == 0) {
            library.insert(file, path);
        }
        vec![Output::Result(text_of(Command::Publish, &reply))]
    }

    async fn delete(&mut self, file: FileName) -> Vec<Output> {
        let (user, library) = match self.acting(Command::Delete) {
            Ok(acting) => acting,
            Err(out) => return out,
        };
        let body = RequestBody::Delete { file: file.clone() };
        let reply = self.call(user.clone(), body.clone()).await;
        let reply = self.settle(&user, body, reply).await;
        if reply.as_ref().is_ok_and(|r| r.code() == 0) {
            library.remove(file.as_str());
        }
        vec![Output::Result(text_of(Command::Delete, &reply))]
    }

    async fn list_users(&mut self) -> Vec<Output> {
        let (user, _) = match self.acting(Command::ListUsers) {
            Ok(acting) => acting,
            Err(out) => return out,
        };
        let reply = self.call(user, RequestBody::ListUsers).await;
        let mut out = vec![Output::Result(text_of(Command::ListUsers, &reply))];
        if let Ok(Reply::ListUsers(ListUsersReply::Ok(users))) = reply {
            out.extend(
                users
                    .iter()
                    .map(|u| Output::Entry(format!("{} {} {}", u.name, u.addr.ip, u.addr.port))),
            );
        }
        out
    }

    async fn list_content(&mut self, target: UserName) -> Vec<Output> {
        let (user, _) = match self.acting(Command::ListContent) {
            Ok(acting) => acting,
            Err(out) => return out,
        };
        let reply = self.call(user, RequestBody::ListContent { target }).await;
        let mut out = vec![Output::Result(text_of(Command::ListContent, &reply))];
        if let Ok(Reply::ListContent(ListContentReply::Ok(files))) = reply {
            out.extend(files.iter().map(|f| Output::Entry(f.to_string())));
        }
        out
    }

    async fn get_file(&mut self, owner: UserName, remote: FileName, local: PathBuf) -> Vec<Output> {
        let fail = || vec![Output::Result(Command::GetFile.fail().to_owned())];
        let Some(user) = self.connected_user().cloned() else {
            eprintln!("GET_FILE: no user connected: CONNECT first");
            return fail();
        };
        let Some(addr) = self.locate(user, owner.clone()).await else {
            return fail();
        };
        let addr = SocketAddr::new(addr.ip, addr.port);
        match self
            .downloader
            .download(addr, owner.as_str(), &remote, &local)
            .await
        {
            Ok(_) => vec![Output::Result(Command::GetFile.text(0).to_owned())],
            Err(DownloadError::NotFound) => {
                vec![Output::Result(Command::GetFile.text(1).to_owned())]
            }
            Err(e) => {
                eprintln!("GET_FILE: {e}");
                fail()
            }
        }
    }

    /// SEARCH (PROTOCOL.md §6.2): `c> SEARCH OK` and one line per result,
    /// `\tOWNER\tFILE\tDESCRIPTION`.
    async fn search(&mut self, query: SearchQuery) -> Vec<Output> {
        let user = match self.acting(Command::Search) {
            Ok((user, _)) => user,
            Err(out) => return out,
        };
        if !self.extensions().await.search {
            return vec![Output::Result(SEARCH_NOT_SUPPORTED.to_owned())];
        }
        let reply = self.call(user, RequestBody::Search { query }).await;
        let mut out = vec![Output::Result(text_of(Command::Search, &reply))];
        if let Ok(Reply::Search(SearchReply::Ok(hits))) = reply {
            out.extend(hits.into_iter().map(|hit| {
                Output::Entry(format!("{}\t{}\t{}", hit.owner, hit.file, hit.description))
            }));
        }
        out
    }

    /// Where `owner` serves files: GET_USER_INFO, or LIST_USERS when the server
    /// does not know that operation (a classic server closes without a reply,
    /// cleanly or with a reset; remembered for the session).
    async fn locate(&mut self, user: UserName, owner: UserName) -> Option<PeerAddr> {
        let reply = if self.extensions.is_some_and(|e| !e.get_user_info) {
            Err(ClientError::NoReply)
        } else {
            self.call(
                user.clone(),
                RequestBody::GetUserInfo {
                    target: owner.clone(),
                },
            )
            .await
        };
        match reply {
            Ok(Reply::GetUserInfo(GetUserInfoReply::Ok(addr))) => return Some(addr),
            Err(ClientError::NoReply) => {
                let known = self.extensions.get_or_insert_with(Extensions::default);
                known.get_user_info = false;
            }
            Ok(other) => {
                eprintln!(
                    "GET_FILE: {owner} is not reachable (GET_USER_INFO answered {})",
                    other.code()
                );
                return None;
            }
            Err(_) => return None,
        }
        match self.call(user, RequestBody::ListUsers).await {
            Ok(Reply::ListUsers(ListUsersReply::Ok(users))) => {
                let found = users.into_iter().find(|u| u.name == owner).map(|u| u.addr);
                if found.is_none() {
                    eprintln!("GET_FILE: {owner} is not connected");
                }
                found
            }
            _ => None,
        }
    }
}

/// Sends PING for `user` every `interval` while the shell is connected (the
/// task is aborted at DISCONNECT). Stops, saying so on stderr, when the
/// server no longer has the user connected (it expired it).
async fn ping_loop(
    client: DirectoryClient,
    datetime: DatetimeClient,
    user: UserName,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let request = Request {
            timestamp: Some(datetime.now().await),
            user: user.clone(),
            body: RequestBody::Ping,
        };
        match client.call(&request).await {
            Ok(Reply::Ping(PingResult::Ok)) => {}
            Ok(Reply::Ping(PingResult::NotConnected | PingResult::UserDoesNotExist)) => {
                eprintln!(
                    "the directory server no longer lists {user} as connected (no PING reached it in time): CONNECT again"
                );
                return;
            }
            Ok(other) => tracing::debug!(%user, ?other, "PING refused"),
            // The server is unreachable for now: the next PING may get through.
            Err(e) => tracing::debug!(%user, error = %e, "PING failed"),
        }
    }
}

/// The text for a command's reply, or its plain FAIL when there was none.
fn text_of(command: Command, reply: &Result<Reply, ClientError>) -> String {
    match reply {
        Ok(reply) => command.text(reply.code()).to_owned(),
        Err(_) => command.fail().to_owned(),
    }
}

/// Runs the shell on this process's stdin and stdout until `QUIT` or EOF.
pub async fn run_shell(config: PeerConfig) -> io::Result<()> {
    let mut session = Session::new(&config);
    let interactive = io::stdin().is_terminal();
    let (lines_tx, mut lines_rx) = mpsc::channel::<String>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // Input is read on a plain thread: rustyline and stdin reads block.
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || read_input(interactive, &lines_tx, &done_rx))?;
    let mut stdout = io::stdout();
    while let Some(line) = lines_rx.recv().await {
        let (out, quit) = session.execute(&line).await;
        for output in out {
            writeln!(stdout, "{output}")?;
        }
        stdout.flush()?;
        if quit {
            return Ok(());
        }
        // Let the input thread show the next prompt only after the output.
        let _ = done_tx.send(());
    }
    // End of input acts like QUIT.
    session.quit().await;
    Ok(())
}

fn read_input(
    interactive: bool,
    lines: &mpsc::Sender<String>,
    done: &std::sync::mpsc::Receiver<()>,
) {
    if interactive && let Ok(mut editor) = rustyline::DefaultEditor::new() {
        loop {
            match editor.readline(PEER_PROMPT) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if lines.blocking_send(line).is_err() || done.recv().is_err() {
                        return;
                    }
                }
                // Ctrl-C clears the line, as shells do; Ctrl-D ends.
                Err(rustyline::error::ReadlineError::Interrupted) => {}
                Err(_) => return,
            }
        }
    }
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match io::BufRead::read_line(&mut stdin.lock(), &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if lines
                    .blocking_send(line.trim_end_matches(['\n', '\r']).to_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_case_insensitively() {
        assert_eq!(
            parse("register alice"),
            Ok(Line::Register("alice".parse().unwrap()))
        );
        assert_eq!(parse("  LIST_USERS  "), Ok(Line::ListUsers));
        assert_eq!(parse(""), Ok(Line::Empty));
        assert_eq!(parse("quit"), Ok(Line::Quit));
        assert_eq!(
            parse("PUBLISH song.mp3 my favourite   song "),
            Ok(Line::Publish(
                "song.mp3".parse().unwrap(),
                "my favourite   song".parse().unwrap()
            ))
        );
        assert_eq!(
            parse("get_file bob a.txt /tmp/b.txt"),
            Ok(Line::GetFile(
                "bob".parse().unwrap(),
                "a.txt".parse().unwrap(),
                PathBuf::from("/tmp/b.txt")
            ))
        );
    }

    #[test]
    fn syntax_errors_give_usage() {
        assert_eq!(parse("REGISTER"), Err(Command::Register.usage().to_owned()));
        assert_eq!(
            parse("REGISTER a b"),
            Err(Command::Register.usage().to_owned())
        );
        assert_eq!(
            parse("PUBLISH onlyname"),
            Err(Command::Publish.usage().to_owned())
        );
        assert_eq!(
            parse("LIST_USERS x"),
            Err(Command::ListUsers.usage().to_owned())
        );
        assert_eq!(
            parse("GET_FILE a b"),
            Err(Command::GetFile.usage().to_owned())
        );
        assert_eq!(parse("FROB x"), Err(unknown_command("FROB")));
        assert_eq!(parse("QUIT now"), Err(QUIT_USAGE.to_owned()));
    }
}

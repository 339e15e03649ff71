//! The peer's interactive shell (PROTOCOL.md §5).
//!
//! [`Session`] executes one command line and returns the lines to print, so
//! the shell logic is testable without a terminal; [`run_shell`]
//! (`terminal`) feeds it from a terminal (rustyline: line editing, history,
//! Tab completion, the `c> ` prompt) or from piped stdin (no prompt; EOF
//! acts like `QUIT`), and stops a running command on Ctrl-C.
//!
//! What a user published is remembered in the state directory
//! ([`super::state::Publications`]): a later CONNECT, in this run or after a
//! restart, serves it again.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use p2p_proto::directory::{
    CapabilitiesReply, ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply,
    ListContentReply, ListUsersReply, OpCode, PeerAddr, PingResult, PublishResult, Reply, Request,
    RequestBody, SearchQuery, SearchReply, UnregisterResult,
};
use p2p_proto::field::{Description, FileName, UserName};

use super::client::{ClientError, DirectoryClient};
use super::destination;
use super::download::{
    DownloadError, DownloadOptions, Downloader, ProgressReporter, TransferProtocol,
};
use super::file_server::{FileServer, FileServerConfig, Library};
use super::settle;
use super::state::{
    CONNECTED_FILE, ConnectedMarker, DIGESTS_FILE, DigestCache, LIBRARY_FILE, Publications,
    StateDir,
};
use crate::console::{self, Command, PEER_PROMPT, SEARCH_NOT_SUPPORTED};
use crate::datetime::DatetimeClient;
use p2p_proto::timestamp::Timestamp;
use tokio::sync::mpsc;

mod parse;
#[cfg(feature = "terminal")]
mod progress;
#[cfg(feature = "terminal")]
mod terminal;

use parse::{Line, parse};
#[cfg(feature = "terminal")]
pub use progress::{PROGRESS_DELAY, TerminalProgress};
#[cfg(feature = "terminal")]
pub use terminal::{MAX_HISTORY, ShellExit, ShellSignals, run_shell};

/// How many diagnostics from between commands ([`Session::notices`]) wait
/// unread at most; each PING loop sends at most two.
pub const MAX_PENDING_NOTICES: usize = 16;

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

/// One line of shell output.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// A command's result text, printed after the `c> ` prefix.
    Result(String),
    /// One entry of a listing, printed after a tab.
    Entry(String),
    /// A line of `help`, printed as it is.
    Text(String),
    /// A diagnostic beside the results (why a command failed, what the
    /// peer did on its own): a terminal prints it on stderr as it is, before
    /// the command's result line.
    Warning(String),
    /// A download finished: the summary a terminal shows on stderr after
    /// `c> GET_FILE OK`.
    Transferred {
        /// The file's name where it was saved.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// How long the transfer took.
        elapsed: Duration,
    },
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Result(text) => write!(f, "{PEER_PROMPT}{text}"),
            Self::Entry(text) => write!(f, "\t{text}"),
            Self::Text(text) | Self::Warning(text) => f.write_str(text),
            Self::Transferred {
                name,
                size,
                elapsed,
            } => write!(f, "{name}: {size} bytes in {:.1} s", elapsed.as_secs_f64()),
        }
    }
}

/// Whether a result text is a command's OK text (anything else counts as a
/// failed command for the exit status in piped mode).
fn is_ok_text(text: &str) -> bool {
    [
        Command::Register,
        Command::Unregister,
        Command::Connect,
        Command::Disconnect,
        Command::Publish,
        Command::Delete,
        Command::ListUsers,
        Command::ListContent,
        Command::GetFile,
        Command::Search,
    ]
    .iter()
    .any(|c| c.ok() == text)
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

/// A user's files: what its transfer listener serves, and what it published
/// through this peer (kept in the state directory).
#[derive(Debug)]
struct UserFiles {
    library: Library,
    published: Publications,
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
    /// Each user's files, loaded at its first CONNECT and kept across
    /// DISCONNECT/CONNECT like the directory keeps the publications.
    users: HashMap<UserName, UserFiles>,
    ping_interval: Duration,
    /// The server's extensions once asked (once per session).
    extensions: Option<Extensions>,
    /// User names seen in this session (Tab completion).
    seen_users: Arc<Mutex<BTreeSet<String>>>,
    /// Whether a command has failed (its result was not its OK text).
    failed: bool,
    /// The running command's diagnostics, returned before its results.
    notes: Mutex<Vec<Output>>,
    /// Diagnostics between commands (the PING loop's), for the front end.
    notices: mpsc::Sender<Output>,
    /// Their receiving end, until the front end takes it.
    notices_rx: Option<mpsc::Receiver<Output>>,
}

impl Session {
    /// A session with no user connected.
    pub fn new(config: &PeerConfig) -> Self {
        let mut download = DownloadOptions::default();
        if config.classic {
            // A classic peer network: plain GET_FILE only (no digest, no resume).
            download.protocol = TransferProtocol::Classic;
        }
        let (notices, notices_rx) = mpsc::channel(MAX_PENDING_NOTICES);
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
            users: HashMap::new(),
            ping_interval: config.ping_interval,
            // --classic: known to have none, never asked.
            extensions: config.classic.then(Extensions::default),
            seen_users: Arc::default(),
            failed: false,
            notes: Mutex::default(),
            notices,
            notices_rx: Some(notices_rx),
        }
    }

    /// The diagnostics that come between commands (a PING loop that finds
    /// its user expired), as [`Output::Warning`]s: the first call takes the
    /// receiver, later ones get `None`. Up to [`MAX_PENDING_NOTICES`] wait
    /// unread; further ones are dropped (and traced).
    pub fn notices(&mut self) -> Option<mpsc::Receiver<Output>> {
        self.notices_rx.take()
    }

    /// Records a diagnostic of the running command.
    fn warn(&self, text: impl Into<String>) {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Output::Warning(text.into()));
    }

    /// The running command's diagnostics, taken.
    fn take_notes(&self) -> Vec<Output> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Tells `reporter` (or no one) how each download advances; with one,
    /// a finished download's result is followed by
    /// [`Output::Transferred`].
    pub fn set_progress(&mut self, reporter: Option<Arc<dyn ProgressReporter>>) {
        self.downloader.set_progress(reporter);
    }

    /// Whether any command so far failed: its result line was not the
    /// command's OK text (a FAIL text, a usage line, an error).
    pub fn any_failed(&self) -> bool {
        self.failed
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

    fn saw_user(&self, user: &str) {
        self.seen_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.to_owned());
    }

    /// Executes one command line. Returns the lines to print and whether the
    /// shell should end (`QUIT`).
    pub async fn execute(&mut self, line: &str) -> (Vec<Output>, bool) {
        self.execute_until(line, std::future::pending()).await
    }

    /// [`Self::execute`], stopped part way when `cancel` completes first (Ctrl-C).
    /// Only commands that change nothing on the directory server stop
    /// (LIST_USERS, LIST_CONTENT, SEARCH, GET_FILE): the others are short
    /// (bounded by the operation timeout) and finish, so the shell and the
    /// server agree on who is connected and what is published. A stopped
    /// command prints its plain FAIL text; a stopped download keeps its part
    /// file as PROTOCOL.md §6.4 says.
    pub async fn execute_until(
        &mut self,
        line: &str,
        cancel: impl Future<Output = ()>,
    ) -> (Vec<Output>, bool) {
        let parsed = match parse(line) {
            Ok(parsed) => parsed,
            Err(text) => {
                self.failed = true;
                return (vec![Output::Result(text)], false);
            }
        };
        let command = parsed.command();
        let (out, cancelled) = if parsed.cancellable() {
            tokio::select! {
                out = self.run(parsed) => (out, false),
                // Never QUIT: a stopped command goes on to the next line.
                () = cancel => (
                    Some(
                        command
                            .map(|c| vec![Output::Result(c.fail().to_owned())])
                            .unwrap_or_default(),
                    ),
                    true,
                ),
            }
        } else {
            (self.run(parsed).await, false)
        };
        if cancelled {
            let word = command.map_or("", Command::word);
            self.warn(format!("{word}: {}", console::CANCELLED));
        }
        // Diagnostics first, as they happened: then the results.
        let mut lines = self.take_notes();
        let Some(out) = out else {
            return (lines, true);
        };
        if out
            .iter()
            .any(|o| matches!(o, Output::Result(text) if !is_ok_text(text)))
        {
            self.failed = true;
        }
        lines.extend(out);
        (lines, false)
    }

    /// Runs a parsed line; `None` for `QUIT`.
    async fn run(&mut self, parsed: Line) -> Option<Vec<Output>> {
        Some(match parsed {
            Line::Empty => vec![],
            Line::Quit => {
                self.leave().await;
                return None;
            }
            Line::Help(None) => console::shell_help()
                .into_iter()
                .map(Output::Text)
                .collect(),
            Line::Help(Some(word)) => match console::command_help(&word) {
                Some(line) => vec![Output::Text(line)],
                None => vec![Output::Result(console::unknown_command(&word))],
            },
            Line::Register(user) => {
                self.saw_user(user.as_str());
                let reply = self.call(user, RequestBody::Register).await;
                vec![Output::Result(text_of(Command::Register, &reply))]
            }
            Line::Unregister(user) => self.unregister(user).await,
            Line::Connect(user) => {
                self.saw_user(user.as_str());
                self.connect(user).await
            }
            Line::Disconnect(user) => self.disconnect(user).await,
            Line::Publish(file, description) => self.publish(file, description).await,
            Line::Delete(file) => self.delete(file).await,
            Line::ListUsers => self.list_users().await,
            Line::ListContent(target) => {
                self.saw_user(target.as_str());
                self.list_content(target).await
            }
            Line::GetFile(user, remote, local) => {
                self.saw_user(user.as_str());
                self.get_file(user, remote, local.as_deref()).await
            }
            Line::Search(query) => self.search(query).await,
        })
    }

    /// Disconnects the connected user, if any (`QUIT`, end of input,
    /// SIGTERM, SIGHUP). Returns what went wrong, as [`Output::Warning`]s.
    pub async fn quit(&mut self) -> Vec<Output> {
        self.leave().await;
        self.take_notes()
    }

    /// [`Self::quit`] within a command (its diagnostics stay with it).
    async fn leave(&mut self) {
        if let Some(user) = self.connected_user().cloned() {
            let _ = self.disconnect(user).await;
        }
    }

    /// One directory operation; a failure is a diagnostic ([`Output::Warning`]) under the
    /// command's word.
    async fn call(&self, user: UserName, body: RequestBody) -> Result<Reply, ClientError> {
        let op = body.op();
        let result = self.send(user, body).await;
        if let Err(e) = &result {
            self.warn(format!("{op}: {e}"));
        }
        result
    }

    /// One directory operation, saying nothing: for the operations a command
    /// makes on its own behalf (GET_FILE locating the owner).
    async fn send(&self, user: UserName, body: RequestBody) -> Result<Reply, ClientError> {
        let timestamp = Some(self.now().await);
        let request = Request {
            timestamp,
            user,
            body,
        };
        self.client.call(&request).await
    }

    /// The datetime service's time; its first fallback to the local clock
    /// is said as a diagnostic.
    async fn now(&self) -> Timestamp {
        let (timestamp, warning) = self.datetime.now_or_warn().await;
        if let Some(warning) = warning {
            self.warn(warning);
        }
        timestamp
    }

    /// The state files of `user` on this server, if there is a state directory.
    fn user_file(&self, user: &UserName, name: &str) -> Option<PathBuf> {
        self.state.as_ref().map(|state| {
            state
                .user_dir(&self.server_host, self.server_port, user)
                .join(name)
        })
    }

    /// A state-changing operation: [`Self::call`] of `body` as `user`, or, when
    /// its reply was lost after the request may have arrived, what the
    /// directory shows (peer/settle.rs), said as a diagnostic.
    async fn call_settled(
        &mut self,
        user: &UserName,
        body: RequestBody,
    ) -> Result<Reply, ClientError> {
        match self.call(user.clone(), body.clone()).await {
            Err(e) if e.may_have_taken_effect() => {
                // Extensions as far as known: no CAPABILITIES round trip to a hung server.
                let get_user_info = self.extensions.is_some_and(|x| x.get_user_info);
                let request = Request {
                    timestamp: Some(self.now().await),
                    user: user.clone(),
                    body,
                };
                let settled = settle::lost_reply(&self.client, &request, get_user_info).await;
                self.warn(settled.explain(request.op().as_str()));
                settled.into_reply(e)
            }
            other => other,
        }
    }

    async fn unregister(&mut self, user: UserName) -> Vec<Output> {
        let reply = self.call(user.clone(), RequestBody::Unregister).await;
        if let Ok(Reply::Unregister(UnregisterResult::Ok)) = reply {
            self.release(&user).await;
            // The directory removed the user's publications: forget them.
            let mut published = match self.users.remove(&user) {
                Some(files) => files.published,
                None => self.publications(&user).await,
            };
            if let Err(e) = published.clear() {
                self.warn(format!(
                    "UNREGISTER: cannot forget {user}'s files in the state directory: {e}"
                ));
            }
        }
        vec![Output::Result(text_of(Command::Unregister, &reply))]
    }

    /// What `user` published through this peer, from the state directory.
    async fn publications(&self, user: &UserName) -> Publications {
        self.load_state(
            user,
            LIBRARY_FILE,
            Publications::load,
            Publications::in_memory,
            |shown, e| {
                format!("cannot read {shown}: {e}; files published from now on are not remembered")
            },
        )
        .await
    }

    /// Loads `user`'s state file `name` with `load` on a blocking thread; when
    /// there is no state directory, or the file cannot be read (said as
    /// `warning` words), the state lives in memory for this session.
    async fn load_state<T: Send + 'static>(
        &self,
        user: &UserName,
        name: &str,
        load: fn(PathBuf) -> io::Result<T>,
        in_memory: fn() -> T,
        warning: impl FnOnce(&str, &io::Error) -> String,
    ) -> T {
        let Some(file) = self.user_file(user, name) else {
            return in_memory();
        };
        let shown = file.display().to_string();
        match tokio::task::spawn_blocking(move || load(file)).await {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                self.warn(warning(&shown, &e));
                in_memory()
            }
            Err(_) => in_memory(),
        }
    }

    /// Loads `user`'s files at its first CONNECT in this session.
    async fn user_files(&mut self, user: &UserName) -> Library {
        if !self.users.contains_key(user) {
            let library = Library::with_digests(self.digest_cache(user).await);
            let published = self.publications(user).await;
            self.users
                .insert(user.clone(), UserFiles { library, published });
        }
        self.users
            .get(user)
            .map(|files| files.library.clone())
            .unwrap_or_default()
    }

    /// Serves again what `user` published before (this run or an earlier one)
    /// and returns the names whose local file is gone, with its path.
    fn restore(&self, user: &UserName) -> Vec<(String, PathBuf)> {
        let Some(files) = self.users.get(user) else {
            return vec![];
        };
        let mut gone = Vec::new();
        for (name, path) in files.published.entries() {
            match FileName::new(name) {
                Ok(file) if path.is_file() => files.library.insert(file, path.to_path_buf()),
                Ok(file) => {
                    files.library.remove(file.as_str());
                    gone.push((name.to_owned(), path.to_path_buf()));
                }
                Err(_) => tracing::warn!(%name, "a remembered name is not a valid file name"),
            }
        }
        gone
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
        let library = self.user_files(&user).await;
        let gone = self.restore(&user);
        let config = FileServerConfig {
            bind: self.listen,
            congestion: self.congestion.clone(),
            ..FileServerConfig::default()
        };
        let server = match FileServer::start(config, library).await {
            Ok(server) => server,
            Err(e) => {
                self.warn(format!(
                    "CONNECT: cannot start sharing files on {}: {e}",
                    self.listen
                ));
                return vec![Output::Result(Command::Connect.fail().to_owned())];
            }
        };
        let Some(port) = NonZeroU16::new(server.local_addr().port()) else {
            server.stop().await;
            return vec![Output::Result(Command::Connect.fail().to_owned())];
        };
        let mut reply = self
            .call_settled(&user, RequestBody::Connect { port })
            .await;
        if let Ok(Reply::Connect(ConnectResult::AlreadyConnected)) = reply
            && self.left_connected(&user)
        {
            reply = self.connect_again(&user, port).await;
        }
        if let Ok(Reply::Connect(ConnectResult::Ok)) = reply {
            if let Some(file) = self.user_file(&user, CONNECTED_FILE) {
                let marker = ConnectedMarker {
                    pid: std::process::id(),
                    port: port.get(),
                };
                if let Err(e) = marker.write(&file) {
                    tracing::warn!(error = %e, "cannot record the connection in the state directory");
                }
            }
            for (name, path) in &gone {
                self.warn(format!(
                    "CONNECT: {user} can no longer share {name}: {} is gone (DELETE {name} takes it off the directory)",
                    path.display()
                ));
            }
            let pinger = if self.extensions().await.ping {
                Some(tokio::spawn(ping_loop(
                    self.client.clone(),
                    self.datetime.clone(),
                    user.clone(),
                    self.ping_interval,
                    self.notices.clone(),
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

    /// Whether an earlier run of this peer (same state directory) connected
    /// as `user` and stopped without DISCONNECT: its process is gone.
    fn left_connected(&self, user: &UserName) -> bool {
        self.user_file(user, CONNECTED_FILE)
            .and_then(|file| ConnectedMarker::read(&file))
            .is_some_and(|marker| marker.process_gone())
    }

    /// The directory still lists `user` as connected from a run of this peer
    /// that was killed: DISCONNECT it, then CONNECT again on `port`.
    async fn connect_again(&self, user: &UserName, port: NonZeroU16) -> Result<Reply, ClientError> {
        self.warn(format!(
            "CONNECT: {user} was still connected from an earlier run of this peer that stopped without DISCONNECT; connecting again"
        ));
        let disconnected = self.call(user.clone(), RequestBody::Disconnect).await?;
        if disconnected != Reply::Disconnect(DisconnectResult::Ok) {
            tracing::debug!(
                reply = ?disconnected,
                "DISCONNECT before connecting again refused"
            );
        }
        self.call(user.clone(), RequestBody::Connect { port }).await
    }

    /// The digests of `user`'s files, from the state directory when there is one.
    async fn digest_cache(&self, user: &UserName) -> DigestCache {
        self.load_state(
            user,
            DIGESTS_FILE,
            DigestCache::load,
            DigestCache::in_memory,
            |shown, e| format!("CONNECT: cannot read {shown}: {e}; digests stay in memory"),
        )
        .await
    }

    async fn disconnect(&mut self, user: UserName) -> Vec<Output> {
        let reply = self.call_settled(&user, RequestBody::Disconnect).await;
        // The listener stops whenever this shell stops acting as that user:
        // on success, and also when the server no longer knows the user as
        // connected.
        let stops = match &reply {
            Ok(Reply::Disconnect(result)) => match result {
                DisconnectResult::Ok
                | DisconnectResult::UserDoesNotExist
                | DisconnectResult::NotConnected => true,
                DisconnectResult::Other => false,
            },
            _ => false,
        };
        if stops {
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
            if let Some(file) = self.user_file(user, CONNECTED_FILE) {
                ConnectedMarker::remove(&file);
            }
        }
    }

    /// The connected user and its library, or the command's NOT CONNECTED text.
    fn acting(&self, command: Command) -> Result<(UserName, Library), Vec<Output>> {
        match &self.connected {
            Some(c) => Ok((
                c.user.clone(),
                self.users
                    .get(&c.user)
                    .map(|files| files.library.clone())
                    .unwrap_or_default(),
            )),
            None => Err(vec![Output::Result(command.not_connected().to_owned())]),
        }
    }

    /// Records what `user` publishes (or no longer does) in the state directory.
    fn remember(&mut self, user: &UserName, name: &str, path: Option<PathBuf>) {
        let Some(files) = self.users.get_mut(user) else {
            return;
        };
        let saved = match path {
            Some(path) => files.published.insert(name, path),
            None => files.published.remove(name),
        };
        if let Err(e) = saved {
            self.warn(format!(
                "cannot record {user}'s files in the state directory: {e}; a restarted peer will not share {name}"
            ));
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
                self.warn(format!("PUBLISH: {} is not a regular file", path.display()));
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
            Err(e) => {
                self.warn(format!("PUBLISH: {file}: {e}"));
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
                self.warn(format!("PUBLISH: cannot read {}: {e}", path.display()));
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
            Err(e) => {
                self.warn(format!("PUBLISH: {e}"));
                return vec![Output::Result(Command::Publish.fail().to_owned())];
            }
        }
        let body = RequestBody::Publish {
            file: file.clone(),
            description,
        };
        let reply = self.call_settled(&user, body).await;
        // Already published: the directory lists it for this user (an
        // earlier run published it): the contract's text, but this file is served.
        let serves = match &reply {
            Ok(Reply::Publish(result)) => match result {
                PublishResult::Ok | PublishResult::AlreadyPublished => true,
                PublishResult::UserDoesNotExist
                | PublishResult::NotConnected
                | PublishResult::Other => false,
            },
            _ => false,
        };
        if serves {
            library.insert(file.clone(), path.clone());
            self.remember(&user, file.as_str(), Some(path));
        }
        vec![Output::Result(text_of(Command::Publish, &reply))]
    }

    async fn delete(&mut self, file: FileName) -> Vec<Output> {
        let (user, library) = match self.acting(Command::Delete) {
            Ok(acting) => acting,
            Err(out) => return out,
        };
        let reply = self
            .call_settled(&user, RequestBody::Delete { file: file.clone() })
            .await;
        // Not published there: nothing to serve either.
        let unserved = match &reply {
            Ok(Reply::Delete(result)) => match result {
                DeleteResult::Ok | DeleteResult::NotPublished => true,
                DeleteResult::UserDoesNotExist
                | DeleteResult::NotConnected
                | DeleteResult::Other => false,
            },
            _ => false,
        };
        if unserved {
            library.remove(file.as_str());
            self.remember(&user, file.as_str(), None);
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
            for u in &users {
                self.saw_user(u.name.as_str());
            }
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

    /// Whether `dest` is the local file of a name some user of this session
    /// publishes.
    fn publishes(&self, dest: &Path) -> bool {
        destination::canonical(dest).is_some_and(|dest| {
            self.users
                .values()
                .any(|files| files.published.publishes_path(&dest))
        })
    }

    async fn get_file(
        &mut self,
        owner: UserName,
        remote: FileName,
        local: Option<&Path>,
    ) -> Vec<Output> {
        let fail = || vec![Output::Result(Command::GetFile.fail().to_owned())];
        let Some(user) = self.connected_user().cloned() else {
            self.warn("GET_FILE: no user connected: CONNECT first");
            return fail();
        };
        // The destination is checked before anything is asked or fetched.
        let dest = match destination::resolve(local, remote.as_str()) {
            Ok(dest) => dest,
            Err(e) => {
                self.warn(format!("GET_FILE: {e}"));
                return fail();
            }
        };
        if self.publishes(&dest) {
            self.warn(format!(
                "GET_FILE: {} is a file you share; it is not overwritten (give another local name)",
                dest.display()
            ));
            return fail();
        }
        let Some(addr) = self.locate(user, owner.clone()).await else {
            return fail();
        };
        let addr = SocketAddr::new(addr.ip, addr.port);
        let started = Instant::now();
        match self
            .downloader
            .download(addr, owner.as_str(), &remote, &dest)
            .await
        {
            Ok(size) => {
                let mut out = vec![Output::Result(Command::GetFile.ok().to_owned())];
                if self.downloader.options().progress.is_some() {
                    out.push(Output::Transferred {
                        name: dest.display().to_string(),
                        size,
                        elapsed: started.elapsed(),
                    });
                }
                out
            }
            Err(DownloadError::NotFound) => {
                vec![Output::Result(console::GET_FILE_NOT_EXIST.to_owned())]
            }
            Err(e) => {
                self.warn(format!("GET_FILE: {remote} from {owner}: {e}"));
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
            for hit in &hits {
                self.saw_user(hit.owner.as_str());
            }
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
            self.send(
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
            Ok(Reply::GetUserInfo(GetUserInfoReply::TargetNotFound)) => {
                self.warn(format!(
                    "GET_FILE: {owner} does not exist or is not connected"
                ));
                return None;
            }
            Ok(Reply::GetUserInfo(GetUserInfoReply::NotConnected)) => {
                self.warn(format!(
                    "GET_FILE: {user} is not connected on the directory server: CONNECT again"
                ));
                return None;
            }
            Ok(other) => {
                tracing::debug!(%owner, reply = ?other, "GET_USER_INFO refused");
                self.warn(format!(
                    "GET_FILE: the directory server cannot say where {owner} is"
                ));
                return None;
            }
            Err(e) => {
                self.warn(format!("GET_FILE: {e}"));
                return None;
            }
        }
        match self.send(user, RequestBody::ListUsers).await {
            Ok(Reply::ListUsers(ListUsersReply::Ok(users))) => {
                let found = users.into_iter().find(|u| u.name == owner).map(|u| u.addr);
                if found.is_none() {
                    self.warn(format!("GET_FILE: {owner} is not connected"));
                }
                found
            }
            Ok(_) => {
                self.warn(format!(
                    "GET_FILE: the directory server cannot say where {owner} is"
                ));
                None
            }
            Err(e) => {
                self.warn(format!("GET_FILE: {e}"));
                None
            }
        }
    }
}

/// Sends PING for `user` every `interval` while the shell is connected (the
/// task is aborted at DISCONNECT). Stops, saying so through `notices`, when
/// the server no longer has the user connected (it expired it).
async fn ping_loop(
    client: DirectoryClient,
    datetime: DatetimeClient,
    user: UserName,
    interval: Duration,
    notices: mpsc::Sender<Output>,
) {
    let notice = |text: String| {
        if let Err(e) = notices.try_send(Output::Warning(text)) {
            tracing::warn!(error = %e, "a diagnostic was dropped");
        }
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let request = Request {
            timestamp: Some({
                let (timestamp, warning) = datetime.now_or_warn().await;
                if let Some(warning) = warning {
                    notice(warning);
                }
                timestamp
            }),
            user: user.clone(),
            body: RequestBody::Ping,
        };
        match client.call(&request).await {
            Ok(Reply::Ping(PingResult::Ok)) => {}
            Ok(Reply::Ping(PingResult::NotConnected | PingResult::UserDoesNotExist)) => {
                notice(format!(
                    "the directory server no longer lists {user} as connected (no PING reached it in time): CONNECT again"
                ));
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
        Ok(reply) => command.reply_text(reply).to_owned(),
        Err(_) => command.fail().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::Encode;
    use p2p_proto::directory::UserEntry;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A classic directory server as some C servers are: it reads OP,
    /// DATETIME and USER one byte at a time; for an OP it does not know it
    /// closes with the rest of the request unread, so the close is a reset.
    /// LIST_USERS lists `owner`. Records the OPs.
    async fn three_field_server(owner: UserEntry) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ops = Arc::new(Mutex::new(Vec::new()));
        let seen = ops.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut fields = vec![Vec::new()];
                while fields.len() <= 3 {
                    let Ok(byte) = stream.read_u8().await else {
                        break;
                    };
                    if byte == 0 {
                        fields.push(Vec::new());
                    } else if let Some(last) = fields.last_mut() {
                        last.push(byte);
                    }
                }
                let op = String::from_utf8_lossy(&fields[0]).into_owned();
                seen.lock().unwrap().push(op.clone());
                if op == "LIST_USERS" {
                    let mut out = Vec::new();
                    Reply::ListUsers(ListUsersReply::Ok(vec![owner.clone()])).encode(&mut out);
                    stream.write_all(&out).await.unwrap();
                }
                // Dropped: with GET_USER_INFO's TARGET unread, a reset.
            }
        });
        (port, ops)
    }

    #[tokio::test]
    async fn get_user_info_reset_before_any_byte_falls_back_to_list_users() {
        let owner = UserEntry {
            name: "alice".parse().unwrap(),
            addr: PeerAddr {
                ip: [127, 0, 0, 9].into(),
                port: 4242,
            },
        };
        let (port, ops) = three_field_server(owner.clone()).await;
        let mut config = PeerConfig::new("127.0.0.1", port);
        config.state_dir = None;
        // No datetime service: the peer's own clock, at once.
        config.datetime_url = "http://127.0.0.1:1/datetime".into();
        let mut session = Session::new(&config);
        let bob: UserName = "bob".parse().unwrap();
        let found = session.locate(bob.clone(), owner.name.clone()).await;
        assert_eq!(found, Some(owner.addr));
        assert_eq!(*ops.lock().unwrap(), ["GET_USER_INFO", "LIST_USERS"]);
        // Remembered for the session: GET_USER_INFO is not sent again.
        let found = session.locate(bob, owner.name.clone()).await;
        assert_eq!(found, Some(owner.addr));
        assert_eq!(
            *ops.lock().unwrap(),
            ["GET_USER_INFO", "LIST_USERS", "LIST_USERS"]
        );
    }
}

//! Console texts that users and scripts match on, in one place.
//!
//! The peer shell prints one `c> TEXT` line per command result; the directory
//! server prints `s> ...` lines. These texts are part of the contract
//! (PROTOCOL.md §5): classic scripts grep for them, so they never change
//! casually.

use std::fmt;
use std::net::SocketAddr;

use p2p_proto::directory::{
    ConnectResult, DeleteResult, DisconnectResult, ListContentReply, ListUsersReply, OpCode,
    PublishResult, RegisterResult, Reply, SearchReply, UnregisterResult,
};
use p2p_proto::timestamp::Timestamp;

/// Prefix of every peer result line and of the interactive prompt.
pub const PEER_PROMPT: &str = "c> ";

/// Prefix of every directory server console line.
pub const SERVER_PREFIX: &str = "s> ";

/// A command of the peer shell whose result has a fixed text per result code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `REGISTER user`
    Register,
    /// `UNREGISTER user`
    Unregister,
    /// `CONNECT user`
    Connect,
    /// `DISCONNECT user`
    Disconnect,
    /// `PUBLISH file description`
    Publish,
    /// `DELETE file`
    Delete,
    /// `LIST_USERS`
    ListUsers,
    /// `LIST_CONTENT user`
    ListContent,
    /// `GET_FILE user remote_file local_file`
    GetFile,
    /// `SEARCH term...` (PROTOCOL.md §6.2)
    Search,
}

impl Command {
    /// The command's OK text (`REGISTER OK`).
    pub const fn ok(self) -> &'static str {
        match self {
            Self::Register => "REGISTER OK",
            Self::Unregister => "UNREGISTER OK",
            Self::Connect => "CONNECT OK",
            Self::Disconnect => "DISCONNECT OK",
            Self::Publish => "PUBLISH OK",
            Self::Delete => "DELETE OK",
            Self::ListUsers => "LIST_USERS OK",
            Self::ListContent => "LIST_CONTENT OK",
            Self::GetFile => "GET_FILE OK",
            Self::Search => "SEARCH OK",
        }
    }

    /// The command's plain `... FAIL` text: unreachable server, broken reply,
    /// local error.
    pub const fn fail(self) -> &'static str {
        match self {
            Self::Register => "REGISTER FAIL",
            Self::Unregister => "UNREGISTER FAIL",
            Self::Connect => "CONNECT FAIL",
            Self::Disconnect => "DISCONNECT FAIL",
            Self::Publish => "PUBLISH FAIL",
            Self::Delete => "DELETE FAIL",
            Self::ListUsers => "LIST_USERS FAIL",
            Self::ListContent => "LIST_CONTENT FAIL",
            Self::GetFile => "GET_FILE FAIL",
            Self::Search => "SEARCH FAIL",
        }
    }

    /// The command word (`GET_FILE`), as its OK text starts.
    pub fn word(self) -> &'static str {
        let ok = self.ok();
        ok.strip_suffix(" OK").unwrap_or(ok)
    }

    /// The text for the directory server's reply to this command: one
    /// exhaustive match per operation's result, so a new result code does
    /// not compile until it has its text. A reply to another operation (not
    /// sent by the client) gives the plain FAIL, and so does `GET_FILE`,
    /// whose texts come from the transfer ([`GET_FILE_NOT_EXIST`]).
    pub fn reply_text(self, reply: &Reply) -> &'static str {
        match (self, reply) {
            (Self::Register, Reply::Register(r)) => match r {
                RegisterResult::Ok => self.ok(),
                RegisterResult::UserNameInUse => "USERNAME IN USE",
                RegisterResult::Other => self.fail(),
            },
            (Self::Unregister, Reply::Unregister(r)) => match r {
                UnregisterResult::Ok => self.ok(),
                UnregisterResult::UserDoesNotExist => "USER DOES NOT EXIST",
                UnregisterResult::Other => self.fail(),
            },
            (Self::Connect, Reply::Connect(r)) => match r {
                ConnectResult::Ok => self.ok(),
                ConnectResult::UserDoesNotExist => "CONNECT FAIL, USER DOES NOT EXIST",
                ConnectResult::AlreadyConnected => "USER ALREADY CONNECTED",
                ConnectResult::Other => self.fail(),
            },
            (Self::Disconnect, Reply::Disconnect(r)) => match r {
                DisconnectResult::Ok => self.ok(),
                DisconnectResult::UserDoesNotExist => "DISCONNECT FAIL, USER DOES NOT EXIST",
                DisconnectResult::NotConnected => "DISCONNECT FAIL, USER NOT CONNECTED",
                DisconnectResult::Other => self.fail(),
            },
            (Self::Publish, Reply::Publish(r)) => match r {
                PublishResult::Ok => self.ok(),
                PublishResult::UserDoesNotExist => "PUBLISH FAIL, USER DOES NOT EXIST",
                PublishResult::NotConnected => "PUBLISH FAIL, USER NOT CONNECTED",
                PublishResult::AlreadyPublished => "PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
                PublishResult::Other => self.fail(),
            },
            (Self::Delete, Reply::Delete(r)) => match r {
                DeleteResult::Ok => self.ok(),
                DeleteResult::UserDoesNotExist => "DELETE FAIL, USER DOES NOT EXIST",
                DeleteResult::NotConnected => "DELETE FAIL, USER NOT CONNECTED",
                DeleteResult::NotPublished => "DELETE FAIL, CONTENT NOT PUBLISHED",
                DeleteResult::Other => self.fail(),
            },
            (Self::ListUsers, Reply::ListUsers(r)) => match r {
                ListUsersReply::Ok(_) => self.ok(),
                ListUsersReply::UserDoesNotExist => "LIST_USERS FAIL, USER DOES NOT EXIST",
                ListUsersReply::NotConnected => "LIST_USERS FAIL, USER NOT CONNECTED",
                ListUsersReply::Other => self.fail(),
            },
            (Self::ListContent, Reply::ListContent(r)) => match r {
                ListContentReply::Ok(_) => self.ok(),
                ListContentReply::UserDoesNotExist => "LIST_CONTENT FAIL, USER DOES NOT EXIST",
                ListContentReply::NotConnected => "LIST_CONTENT FAIL, USER NOT CONNECTED",
                ListContentReply::TargetDoesNotExist => {
                    "LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST"
                }
                ListContentReply::Other => self.fail(),
            },
            (Self::Search, Reply::Search(r)) => match r {
                SearchReply::Ok(_) => self.ok(),
                SearchReply::UserDoesNotExist => "SEARCH FAIL, USER DOES NOT EXIST",
                SearchReply::NotConnected => "SEARCH FAIL, USER NOT CONNECTED",
                SearchReply::BadQuery => "SEARCH FAIL, BAD QUERY",
                SearchReply::Other => self.fail(),
            },
            _ => self.fail(),
        }
    }

    /// The command's `USER NOT CONNECTED` text, printed when the shell has no
    /// connected user for a command that acts as the connected user: the
    /// text of the server's NOT CONNECTED result. Commands without such a
    /// result give their plain FAIL.
    pub fn not_connected(self) -> &'static str {
        let reply = match self {
            Self::Disconnect => Reply::Disconnect(DisconnectResult::NotConnected),
            Self::Publish => Reply::Publish(PublishResult::NotConnected),
            Self::Delete => Reply::Delete(DeleteResult::NotConnected),
            Self::ListUsers => Reply::ListUsers(ListUsersReply::NotConnected),
            Self::ListContent => Reply::ListContent(ListContentReply::NotConnected),
            Self::Search => Reply::Search(SearchReply::NotConnected),
            Self::Register | Self::Unregister | Self::Connect | Self::GetFile => {
                return self.fail();
            }
        };
        self.reply_text(&reply)
    }

    /// The usage line printed for a syntax error.
    pub fn usage(self) -> &'static str {
        match self {
            Self::Register => "Syntax error. Usage: REGISTER <userName>",
            Self::Unregister => "Syntax error. Usage: UNREGISTER <userName>",
            Self::Connect => "Syntax error. Usage: CONNECT <userName>",
            Self::Disconnect => "Syntax error. Usage: DISCONNECT <userName>",
            Self::Publish => "Syntax error. Usage: PUBLISH <fileName> <description>",
            Self::Delete => "Syntax error. Usage: DELETE <fileName>",
            Self::ListUsers => "Syntax error. Usage: LIST_USERS",
            Self::ListContent => "Syntax error. Usage: LIST_CONTENT <userName>",
            Self::GetFile => {
                "Syntax error. Usage: GET_FILE <userName> <remote_fileName> [<local_fileName>]"
            }
            Self::Search => "Syntax error. Usage: SEARCH <term> [<term>...]",
        }
    }
}

/// `GET_FILE` of a file the other peer does not have (it answered `1`).
pub const GET_FILE_NOT_EXIST: &str = "GET_FILE FAIL, FILE NOT EXIST";

/// `SEARCH` against a server without it (a classic server, or `--classic`).
pub const SEARCH_NOT_SUPPORTED: &str = "SEARCH FAIL, NOT SUPPORTED BY THE SERVER";

/// Text for a command word the shell does not know.
pub fn unknown_command(word: &str) -> String {
    format!("ERROR: command {word} not valid")
}

/// Usage line for `QUIT` given arguments.
pub const QUIT_USAGE: &str = "Syntax error. Use: QUIT";

/// Usage line for `HELP` given more than one argument.
pub const HELP_USAGE: &str = "Syntax error. Use: HELP [<command>]";

/// The shell's commands for `help` and `--help`: the command word, its
/// arguments and one line of explanation.
pub const SHELL_COMMANDS: &[(&str, &str, &str)] = &[
    (
        "REGISTER",
        "<userName>",
        "Creates a user on the directory server.",
    ),
    (
        "UNREGISTER",
        "<userName>",
        "Removes a user and everything it shares; this peer forgets them too.",
    ),
    (
        "CONNECT",
        "<userName>",
        "Acts as the user: shares its files with other peers again, as published before.",
    ),
    (
        "DISCONNECT",
        "<userName>",
        "Stops acting as the user; the directory keeps listing its files.",
    ),
    (
        "PUBLISH",
        "<fileName> <description>",
        "Shares a local file under its name (\"my file.txt\" for a name with spaces).",
    ),
    ("DELETE", "<fileName>", "Stops sharing a file."),
    (
        "LIST_USERS",
        "",
        "Lists the other connected users and where they share from.",
    ),
    (
        "LIST_CONTENT",
        "<userName>",
        "Lists the files a user shares.",
    ),
    (
        "GET_FILE",
        "<userName> <remote_fileName> [<local_fileName>]",
        "Downloads a file; into a folder, or with no local name, it keeps its own name.",
    ),
    (
        "SEARCH",
        "<term> [<term>...]",
        "Finds shared files with a word starting with each term in their name or description.",
    ),
    (
        "HELP",
        "[<command>]",
        "Shows the commands, or how to use one.",
    ),
    (
        "QUIT",
        "",
        "Disconnects the connected user and leaves (so do Ctrl-D, SIGTERM and SIGHUP).",
    ),
];

/// The lines `help` prints: one per command, its usage and what it does.
pub fn shell_help() -> Vec<String> {
    let mut lines =
        vec!["Commands (the command word in any case; Ctrl-C stops a running command):".to_owned()];
    for (word, args, what) in SHELL_COMMANDS {
        lines.push(if args.is_empty() {
            format!("  {word}")
        } else {
            format!("  {word} {args}")
        });
        lines.push(format!("      {what}"));
    }
    lines
}

/// The one line `help COMMAND` prints (`WORD ARGS: what it does`), or `None`
/// for an unknown word.
pub fn command_help(word: &str) -> Option<String> {
    let (word, args, what) = SHELL_COMMANDS
        .iter()
        .find(|(w, _, _)| w.eq_ignore_ascii_case(word))?;
    Some(if args.is_empty() {
        format!("{word}: {what}")
    } else {
        format!("{word} {args}: {what}")
    })
}

/// A field longer than the protocol allows (PROTOCOL.md: 255 bytes).
pub fn field_too_long(field: &str, len: usize, max: usize) -> String {
    format!("ERROR: the {field} is {len} bytes long; at most {max} bytes are allowed")
}

/// A line with a double quote that is never closed.
pub const UNCLOSED_QUOTE: &str = "Syntax error. A double quote is not closed";

/// A line of piped input that is not UTF-8.
pub const NOT_UTF8: &str = "ERROR: the line is not valid UTF-8; it was ignored";

/// A running command that Ctrl-C (SIGINT) stopped, after its FAIL text.
pub const CANCELLED: &str = "cancelled";

/// The server's first line: `s> init server IP:PORT`.
#[derive(Debug)]
pub struct InitLine(pub SocketAddr);

impl fmt::Display for InitLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SERVER_PREFIX}init server {}:{}",
            self.0.ip(),
            self.0.port()
        )
    }
}

/// One line per handled request: `s> OPERATION OP FROM USER AT DATETIME`,
/// without ` AT DATETIME` when the request had none.
#[derive(Debug)]
pub struct OperationLine<'a> {
    /// The operation.
    pub op: OpCode,
    /// The requesting user, as sent.
    pub user: &'a str,
    /// The DATETIME field, exactly as received.
    pub timestamp: Option<&'a Timestamp>,
}

impl fmt::Display for OperationLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SERVER_PREFIX}OPERATION {} FROM {}",
            self.op.as_str(),
            self.user
        )?;
        if let Some(ts) = self.timestamp {
            write!(f, " AT {}", ts.as_str())?;
        }
        Ok(())
    }
}

/// A user the server disconnected because its PINGs stopped (PROTOCOL.md
/// §6.3): `s> EXPIRED USER`.
#[derive(Debug)]
pub struct ExpiredLine<'a>(pub &'a str);

impl fmt::Display for ExpiredLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SERVER_PREFIX}EXPIRED {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every result code of every operation, decoded from its wire byte,
    /// gets PROTOCOL.md §5's text (byte for byte), in code order.
    #[test]
    fn every_result_code_has_its_contract_text() {
        let table: &[(Command, &[&str])] = &[
            (
                Command::Register,
                &["REGISTER OK", "USERNAME IN USE", "REGISTER FAIL"],
            ),
            (
                Command::Unregister,
                &["UNREGISTER OK", "USER DOES NOT EXIST", "UNREGISTER FAIL"],
            ),
            (
                Command::Connect,
                &[
                    "CONNECT OK",
                    "CONNECT FAIL, USER DOES NOT EXIST",
                    "USER ALREADY CONNECTED",
                    "CONNECT FAIL",
                ],
            ),
            (
                Command::Disconnect,
                &[
                    "DISCONNECT OK",
                    "DISCONNECT FAIL, USER DOES NOT EXIST",
                    "DISCONNECT FAIL, USER NOT CONNECTED",
                    "DISCONNECT FAIL",
                ],
            ),
            (
                Command::Publish,
                &[
                    "PUBLISH OK",
                    "PUBLISH FAIL, USER DOES NOT EXIST",
                    "PUBLISH FAIL, USER NOT CONNECTED",
                    "PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
                    "PUBLISH FAIL",
                ],
            ),
            (
                Command::Delete,
                &[
                    "DELETE OK",
                    "DELETE FAIL, USER DOES NOT EXIST",
                    "DELETE FAIL, USER NOT CONNECTED",
                    "DELETE FAIL, CONTENT NOT PUBLISHED",
                    "DELETE FAIL",
                ],
            ),
            (
                Command::ListUsers,
                &[
                    "LIST_USERS OK",
                    "LIST_USERS FAIL, USER DOES NOT EXIST",
                    "LIST_USERS FAIL, USER NOT CONNECTED",
                    "LIST_USERS FAIL",
                ],
            ),
            (
                Command::ListContent,
                &[
                    "LIST_CONTENT OK",
                    "LIST_CONTENT FAIL, USER DOES NOT EXIST",
                    "LIST_CONTENT FAIL, USER NOT CONNECTED",
                    "LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
                    "LIST_CONTENT FAIL",
                ],
            ),
            (
                Command::Search,
                &[
                    "SEARCH OK",
                    "SEARCH FAIL, USER DOES NOT EXIST",
                    "SEARCH FAIL, USER NOT CONNECTED",
                    "SEARCH FAIL, BAD QUERY",
                    "SEARCH FAIL",
                ],
            ),
        ];
        let op = |command: Command| match command {
            Command::Register => OpCode::Register,
            Command::Unregister => OpCode::Unregister,
            Command::Connect => OpCode::Connect,
            Command::Disconnect => OpCode::Disconnect,
            Command::Publish => OpCode::Publish,
            Command::Delete => OpCode::Delete,
            Command::ListUsers => OpCode::ListUsers,
            Command::ListContent => OpCode::ListContent,
            Command::Search => OpCode::Search,
            Command::GetFile => unreachable!("GET_FILE has no directory reply"),
        };
        for (command, texts) in table {
            for (code, text) in texts.iter().enumerate() {
                // A listing's OK reply with no entries: COUNT 0.
                let mut wire = vec![u8::try_from(code).unwrap()];
                if code == 0
                    && matches!(
                        command,
                        Command::ListUsers | Command::ListContent | Command::Search
                    )
                {
                    wire.extend_from_slice(b"0\0");
                }
                let reply = decode_reply(op(*command), &wire);
                assert_eq!(command.reply_text(&reply), *text, "{command:?} code {code}");
            }
            assert_eq!(command.ok(), texts[0]);
            assert_eq!(command.fail(), texts[texts.len() - 1]);
        }
    }

    fn decode_reply(op: OpCode, wire: &[u8]) -> Reply {
        use p2p_proto::Decode;
        let (reply, used) = Reply::decode_with(op, wire)
            .expect("a valid reply")
            .expect("a complete reply");
        assert_eq!(used, wire.len());
        reply
    }

    #[test]
    fn other_texts() {
        // A reply to another operation than the command's: its plain FAIL.
        assert_eq!(
            Command::Publish.reply_text(&Reply::Register(RegisterResult::Ok)),
            "PUBLISH FAIL"
        );
        assert_eq!(
            Command::GetFile.reply_text(&Reply::Register(RegisterResult::Ok)),
            "GET_FILE FAIL"
        );
        assert_eq!(
            Command::Publish.not_connected(),
            "PUBLISH FAIL, USER NOT CONNECTED"
        );
        assert_eq!(
            Command::ListUsers.not_connected(),
            "LIST_USERS FAIL, USER NOT CONNECTED"
        );
        assert_eq!(Command::GetFile.not_connected(), "GET_FILE FAIL");
        assert_eq!(Command::ListContent.word(), "LIST_CONTENT");
        assert_eq!(Command::GetFile.ok(), "GET_FILE OK");
        assert_eq!(GET_FILE_NOT_EXIST, "GET_FILE FAIL, FILE NOT EXIST");
    }

    #[test]
    fn server_lines() {
        let ts: Timestamp = "24/11/2026 20:42:35".parse().unwrap();
        let line = OperationLine {
            op: OpCode::Publish,
            user: "alice",
            timestamp: Some(&ts),
        };
        assert_eq!(
            line.to_string(),
            "s> OPERATION PUBLISH FROM alice AT 24/11/2026 20:42:35"
        );
        let line = OperationLine {
            op: OpCode::ListUsers,
            user: "bob",
            timestamp: None,
        };
        assert_eq!(line.to_string(), "s> OPERATION LIST_USERS FROM bob");
        let init = InitLine("127.0.0.1:8080".parse().unwrap());
        assert_eq!(init.to_string(), "s> init server 127.0.0.1:8080");
        assert_eq!(ExpiredLine("carol").to_string(), "s> EXPIRED carol");
    }
}

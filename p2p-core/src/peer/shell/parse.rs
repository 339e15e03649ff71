//! Command lines: words, double quotes, and the fields they become.
//!
//! Words are split on whitespace (PROTOCOL.md §5). A double-quoted part may
//! hold spaces and is part of the word without its quotes (`"my file.txt"`,
//! also `my" "file.txt`); inside quotes `\"` and `\\` stand for `"` and `\`.
//! PUBLISH's description is the rest of the line after the file name, as
//! typed, unless it is one quoted word. A field over the protocol's limit is
//! reported as too long, with the limit; any other bad field gets the
//! command's usage line.

use std::path::PathBuf;
use std::str::FromStr;

use p2p_proto::directory::SearchQuery;
use p2p_proto::field::{Description, FieldError, FileName, UserName};

use crate::console::{
    Command, HELP_USAGE, QUIT_USAGE, UNCLOSED_QUOTE, field_too_long, unknown_command,
};

/// What a command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Line {
    Empty,
    Quit,
    /// `HELP` or `HELP COMMAND`.
    Help(Option<String>),
    Register(UserName),
    Unregister(UserName),
    Connect(UserName),
    Disconnect(UserName),
    Publish(FileName, Description),
    Delete(FileName),
    ListUsers,
    ListContent(UserName),
    /// The owner, the remote name and the local name if one was given.
    GetFile(UserName, FileName, Option<PathBuf>),
    Search(SearchQuery),
}

impl Line {
    /// Whether Ctrl-C may stop the command part way: only commands that
    /// change nothing on the directory server, so the shell and the server
    /// never disagree about who is connected or what is published.
    pub(super) fn cancellable(&self) -> bool {
        matches!(
            self,
            Self::ListUsers | Self::ListContent(_) | Self::GetFile(..) | Self::Search(_)
        )
    }

    /// The command with the fixed texts, if any.
    pub(super) fn command(&self) -> Option<Command> {
        Some(match self {
            Self::Register(_) => Command::Register,
            Self::Unregister(_) => Command::Unregister,
            Self::Connect(_) => Command::Connect,
            Self::Disconnect(_) => Command::Disconnect,
            Self::Publish(..) => Command::Publish,
            Self::Delete(_) => Command::Delete,
            Self::ListUsers => Command::ListUsers,
            Self::ListContent(_) => Command::ListContent,
            Self::GetFile(..) => Command::GetFile,
            Self::Search(_) => Command::Search,
            Self::Empty | Self::Quit | Self::Help(_) => return None,
        })
    }
}

/// The command words, as Tab completion shows them.
#[cfg(feature = "terminal")]
pub(super) const COMMAND_WORDS: &[&str] = &[
    "REGISTER",
    "UNREGISTER",
    "CONNECT",
    "DISCONNECT",
    "PUBLISH",
    "DELETE",
    "LIST_USERS",
    "LIST_CONTENT",
    "GET_FILE",
    "SEARCH",
    "HELP",
    "QUIT",
];

/// A line that did not make a word list.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UnclosedQuote;

/// The first word of `s` (after leading whitespace) and what follows it;
/// `None` when only whitespace is left.
pub(super) fn next_word(s: &str) -> Result<Option<(String, &str)>, UnclosedQuote> {
    let s = s.trim_start();
    if s.is_empty() {
        return Ok(None);
    }
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => match chars.next() {
                Some((_, c @ ('"' | '\\'))) => word.push(c),
                Some((_, c)) => {
                    word.push('\\');
                    word.push(c);
                }
                None => word.push('\\'),
            },
            c if c.is_whitespace() && !quoted => return Ok(Some((word, &s[i..]))),
            c => word.push(c),
        }
    }
    if quoted {
        return Err(UnclosedQuote);
    }
    Ok(Some((word, "")))
}

/// Every word of `s`.
pub(super) fn words(mut s: &str) -> Result<Vec<String>, UnclosedQuote> {
    let mut out = Vec::new();
    while let Some((word, rest)) = next_word(s)? {
        out.push(word);
        s = rest;
    }
    Ok(out)
}

/// `text` as a protocol field: too long says so with the limit; any other
/// bad value gives the command's usage line.
fn field<T: FromStr<Err = FieldError>>(
    text: &str,
    what: &str,
    command: Command,
) -> Result<T, String> {
    text.parse().map_err(|e| match e {
        FieldError::TooLong { max } => field_too_long(what, text.len(), max),
        _ => command.usage().to_owned(),
    })
}

/// Parses one command line, or returns the text to print instead.
pub(super) fn parse(line: &str) -> Result<Line, String> {
    let Some((word, rest)) = next_word(line).map_err(|_| UNCLOSED_QUOTE.to_owned())? else {
        return Ok(Line::Empty);
    };
    let args = words(rest).map_err(|_| UNCLOSED_QUOTE.to_owned())?;
    let user = |command: Command| -> Result<UserName, String> {
        match args.as_slice() {
            [name] => field(name, "user name", command),
            _ => Err(command.usage().to_owned()),
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "QUIT" if args.is_empty() => Ok(Line::Quit),
        "QUIT" => Err(QUIT_USAGE.to_owned()),
        "HELP" => match args.as_slice() {
            [] => Ok(Line::Help(None)),
            [command] => Ok(Line::Help(Some(command.clone()))),
            _ => Err(HELP_USAGE.to_owned()),
        },
        "REGISTER" => user(Command::Register).map(Line::Register),
        "UNREGISTER" => user(Command::Unregister).map(Line::Unregister),
        "CONNECT" => user(Command::Connect).map(Line::Connect),
        "DISCONNECT" => user(Command::Disconnect).map(Line::Disconnect),
        "LIST_CONTENT" => user(Command::ListContent).map(Line::ListContent),
        "LIST_USERS" if args.is_empty() => Ok(Line::ListUsers),
        "LIST_USERS" => Err(Command::ListUsers.usage().to_owned()),
        "DELETE" => match args.as_slice() {
            [file] => field(file, "file name", Command::Delete).map(Line::Delete),
            _ => Err(Command::Delete.usage().to_owned()),
        },
        "PUBLISH" => {
            let usage = || Command::Publish.usage().to_owned();
            let Some((file, after)) = next_word(rest).map_err(|_| UNCLOSED_QUOTE.to_owned())?
            else {
                return Err(usage());
            };
            // The description is the rest of the line, or one quoted word.
            let after = after.trim();
            let description = match next_word(after) {
                Ok(Some((word, tail))) if after.starts_with('"') && tail.trim().is_empty() => word,
                _ => after.to_owned(),
            };
            if file.is_empty() || description.is_empty() {
                return Err(usage());
            }
            let file = field(&file, "file name", Command::Publish)?;
            let description = field(&description, "description", Command::Publish)?;
            Ok(Line::Publish(file, description))
        }
        // The query is the rest of the line, as typed (the server splits it).
        "SEARCH" if args.is_empty() => Err(Command::Search.usage().to_owned()),
        "SEARCH" => field(rest.trim(), "query", Command::Search).map(Line::Search),
        "GET_FILE" => match args.as_slice() {
            [user, remote, local @ ..] if local.len() <= 1 => {
                let user = field(user, "user name", Command::GetFile)?;
                let remote = field(remote, "file name", Command::GetFile)?;
                let local = match local.first() {
                    Some(local) if local.is_empty() => {
                        return Err(Command::GetFile.usage().to_owned());
                    }
                    Some(local) => Some(PathBuf::from(local)),
                    None => None,
                };
                Ok(Line::GetFile(user, remote, local))
            }
            _ => Err(Command::GetFile.usage().to_owned()),
        },
        _ => Err(unknown_command(&word)),
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
        assert_eq!(parse("help"), Ok(Line::Help(None)));
        assert_eq!(
            parse("HELP get_file"),
            Ok(Line::Help(Some("get_file".into())))
        );
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
                Some(PathBuf::from("/tmp/b.txt"))
            ))
        );
        assert_eq!(
            parse("get_file bob a.txt"),
            Ok(Line::GetFile(
                "bob".parse().unwrap(),
                "a.txt".parse().unwrap(),
                None
            ))
        );
    }

    #[test]
    fn double_quotes_hold_spaces_and_are_not_part_of_the_name() {
        assert_eq!(
            parse(r#"PUBLISH "my file.txt" the "best" file"#),
            Ok(Line::Publish(
                "my file.txt".parse().unwrap(),
                r#"the "best" file"#.parse().unwrap()
            ))
        );
        assert_eq!(
            parse(r#"PUBLISH "my file.txt" "one quoted description""#),
            Ok(Line::Publish(
                "my file.txt".parse().unwrap(),
                "one quoted description".parse().unwrap()
            ))
        );
        assert_eq!(
            parse(r#"GET_FILE bob "a \"b\" c" "local dir/x""#),
            Ok(Line::GetFile(
                "bob".parse().unwrap(),
                r#"a "b" c"#.parse().unwrap(),
                Some(PathBuf::from("local dir/x"))
            ))
        );
        assert_eq!(
            parse(r#"DELETE my" "file"#),
            Ok(Line::Delete("my file".parse().unwrap()))
        );
        assert_eq!(parse(r#"DELETE "my file"#), Err(UNCLOSED_QUOTE.to_owned()));
        assert_eq!(
            words(r#"a "" b"#),
            Ok(vec!["a".to_owned(), String::new(), "b".to_owned()])
        );
    }

    #[test]
    fn over_long_fields_say_so_with_the_limit() {
        let long = "d".repeat(300);
        assert_eq!(
            parse(&format!("PUBLISH a.txt {long}")),
            Err(field_too_long("description", 300, 255))
        );
        assert_eq!(
            parse(&format!("DELETE {}", "f".repeat(256))),
            Err(field_too_long("file name", 256, 255))
        );
        assert_eq!(
            parse(&format!("REGISTER {}", "u".repeat(256))),
            Err(field_too_long("user name", 256, 255))
        );
        // 255 bytes is the limit, not past it.
        assert!(parse(&format!("PUBLISH a.txt {}", "d".repeat(255))).is_ok());
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
            parse("GET_FILE a"),
            Err(Command::GetFile.usage().to_owned())
        );
        assert_eq!(
            parse("GET_FILE a b c d"),
            Err(Command::GetFile.usage().to_owned())
        );
        assert_eq!(parse("FROB x"), Err(unknown_command("FROB")));
        assert_eq!(parse("QUIT now"), Err(QUIT_USAGE.to_owned()));
        assert_eq!(parse("HELP a b"), Err(HELP_USAGE.to_owned()));
    }
}

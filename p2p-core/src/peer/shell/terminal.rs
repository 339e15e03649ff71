//! The shell's front end: stdin and stdout, rustyline on a terminal, signals.
//!
//! On a terminal, rustyline reads lines in raw mode (Ctrl-C there is a key:
//! it clears the line), keeps the history in the state directory and
//! completes with Tab. While a command runs the terminal is in its normal
//! mode, so Ctrl-C is a SIGINT: it stops the command ([`Session::execute_until`]).
//! SIGTERM and SIGHUP act like QUIT. Piped input behaves the same, without
//! the prompt; a line that is not UTF-8 gets an error and the session goes on.

use std::collections::BTreeSet;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use tokio::sync::mpsc;

use super::parse::{COMMAND_WORDS, words};
use super::{Output, PeerConfig, Session, TerminalProgress};
use crate::console::{NOT_UTF8, PEER_PROMPT};
use crate::peer::state::HISTORY_FILE;

/// Lines of history kept in the state directory.
pub const MAX_HISTORY: usize = 1000;

/// What stops the shell or its running command, from the process's signals.
#[non_exhaustive]
pub struct ShellSignals {
    /// One item per SIGINT: it stops the running command.
    pub interrupt: mpsc::UnboundedReceiver<()>,
    /// Completes on SIGTERM or SIGHUP: the shell disconnects and ends.
    pub terminate: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for ShellSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellSignals").finish_non_exhaustive()
    }
}

impl ShellSignals {
    /// Signals that never come.
    pub fn none() -> Self {
        let (_tx, interrupt) = mpsc::unbounded_channel();
        Self {
            interrupt,
            terminate: Box::pin(std::future::pending()),
        }
    }

    /// `interrupt` and `terminate` as given.
    pub fn new(
        interrupt: mpsc::UnboundedReceiver<()>,
        terminate: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            interrupt,
            terminate: Box::pin(terminate),
        }
    }
}

/// How the shell ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShellExit {
    /// Whether stdin was a terminal.
    pub interactive: bool,
    /// Whether any command failed (its result was not its OK text).
    pub any_failed: bool,
}

impl ShellExit {
    /// Whether the program should exit with status 1: piped input and a
    /// command failed.
    pub fn failure(&self) -> bool {
        !self.interactive && self.any_failed
    }
}

/// User names seen in the session, shared with the completer.
type SeenUsers = Arc<Mutex<BTreeSet<String>>>;

/// What the terminal's line editor needs: the history file and the names to
/// complete.
struct EditorSetup {
    history: Option<PathBuf>,
    users: SeenUsers,
}

/// One line of input.
enum Input {
    Line(String),
    NotUtf8,
}

/// Runs the shell on this process's stdin and stdout until `QUIT`, EOF,
/// SIGTERM or SIGHUP.
///
/// # Errors
/// Writing to stdout failed, or the input thread could not start.
pub async fn run_shell(config: PeerConfig, signals: ShellSignals) -> io::Result<ShellExit> {
    let ShellSignals {
        mut interrupt,
        mut terminate,
    } = signals;
    let mut session = Session::new(&config);
    if io::stderr().is_terminal() {
        session.set_progress(Some(Arc::new(TerminalProgress)));
    }
    let mut notices = session.notices();
    let interactive = io::stdin().is_terminal();
    let saved = interactive.then(terminal_mode::save).flatten();
    let (lines_tx, mut lines_rx) = mpsc::channel::<Input>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let editor = interactive.then(|| EditorSetup {
        history: config.state_dir.as_ref().map(|d| d.join(HISTORY_FILE)),
        users: session.seen_users.clone(),
    });
    // Input is read on a plain thread: rustyline and stdin reads block.
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || read_input(editor, &lines_tx, &done_rx))?;
    let mut stdout = io::stdout();
    let mut terminated = false;
    loop {
        let input = tokio::select! {
            // A SIGTERM that came during a command that could not stop
            // goes before any further line.
            biased;
            () = &mut terminate => {
                terminated = true;
                break;
            }
            // Ctrl-C with no command running: nothing to stop.
            Some(()) = interrupt.recv() => continue,
            // Something happened between commands (the user expired).
            Some(notice) = next_notice(&mut notices) => {
                print_outputs(&mut stdout, &[notice])?;
                continue;
            }
            input = lines_rx.recv() => input,
        };
        let Some(input) = input else { break };
        let line = match input {
            Input::Line(line) => line,
            Input::NotUtf8 => {
                session.failed = true;
                writeln!(stdout, "{}", Output::Result(NOT_UTF8.to_owned()))?;
                stdout.flush()?;
                let _ = done_tx.send(());
                continue;
            }
        };
        // A Ctrl-C from before this command does not stop it.
        while interrupt.try_recv().is_ok() {}
        let mut stop = false;
        let (out, quit) = {
            let cancel = async {
                tokio::select! {
                    Some(()) = interrupt.recv() => {}
                    () = &mut terminate => stop = true,
                }
            };
            session.execute_until(&line, cancel).await
        };
        let printed = print_outputs(&mut stdout, &out);
        if stop {
            // After SIGHUP the terminal may be gone (EIO): disconnect anyway.
            terminated = true;
            break;
        }
        printed?;
        if quit {
            restore(saved.as_ref());
            return Ok(exit(&session, interactive));
        }
        // Let the input thread show the next prompt only after the output.
        let _ = done_tx.send(());
    }
    if terminated {
        tracing::debug!("SIGTERM or SIGHUP: leaving as QUIT does");
        if interactive {
            // The prompt line stays as it was: start the next on a new line.
            let _ = writeln!(stdout);
        }
    }
    // End of input, SIGTERM and SIGHUP act like QUIT.
    let out = session.quit().await;
    // After SIGHUP the terminal may be gone (EIO): nothing more to do.
    let _ = print_outputs(&mut stdout, &out);
    restore(saved.as_ref());
    Ok(exit(&session, interactive))
}

fn exit(session: &Session, interactive: bool) -> ShellExit {
    ShellExit {
        interactive,
        any_failed: session.any_failed(),
    }
}

/// The next diagnostic from between commands; never, without a receiver.
async fn next_notice(notices: &mut Option<mpsc::Receiver<Output>>) -> Option<Output> {
    match notices {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Results on stdout; diagnostics and the transfer summary on stderr.
fn print_outputs(stdout: &mut io::Stdout, out: &[Output]) -> io::Result<()> {
    for output in out {
        match output {
            Output::Warning(text) => {
                stdout.flush()?;
                eprintln!("{text}");
            }
            Output::Transferred {
                name,
                size,
                elapsed,
            } => {
                stdout.flush()?;
                eprintln!("{}", summary(name, *size, *elapsed));
            }
            other => writeln!(stdout, "{other}")?,
        }
    }
    stdout.flush()
}

/// `NAME: 605.00 MiB in 1.7s (350.12 MiB/s)`.
fn summary(name: &str, size: u64, elapsed: Duration) -> String {
    use indicatif::{BinaryBytes, HumanDuration};
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        // Rounded to whole bytes: a display, not a measurement.
        let per_sec = (size as f64 / secs).round();
        format!("{}/s", BinaryBytes(per_sec as u64))
    } else {
        "instant".to_owned()
    };
    let time = if secs < 1.0 {
        format!("{} ms", elapsed.as_millis())
    } else {
        HumanDuration(elapsed).to_string()
    };
    format!("{name}: {} in {time} ({rate})", BinaryBytes(size))
}

fn restore(saved: Option<&terminal_mode::Saved>) {
    if let Some(saved) = saved {
        terminal_mode::restore(saved);
    }
}

/// Reads lines: with rustyline when `editor` is given (a terminal), else
/// from stdin as bytes.
fn read_input(
    editor: Option<EditorSetup>,
    lines: &mpsc::Sender<Input>,
    done: &std::sync::mpsc::Receiver<()>,
) {
    if let Some(EditorSetup { history, users }) = editor
        && let Some(mut editor) = new_editor(users)
    {
        if let Some(path) = &history
            && path.exists()
            && let Err(e) = editor.load_history(path)
        {
            eprintln!("cannot read the history {}: {e}", path.display());
        }
        loop {
            match editor.readline(PEER_PROMPT) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                        if let Some(path) = &history {
                            save_history(&mut editor, path);
                        }
                    }
                    if lines.blocking_send(Input::Line(line)).is_err() || done.recv().is_err() {
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
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.lock().read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                let input = match String::from_utf8(std::mem::take(&mut line)) {
                    Ok(text) => Input::Line(text),
                    Err(_) => Input::NotUtf8,
                };
                if lines.blocking_send(input).is_err() {
                    return;
                }
            }
        }
    }
}

fn save_history(editor: &mut Editor<ShellHelper, FileHistory>, path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = editor.save_history(path) {
        tracing::debug!(error = %e, path = %path.display(), "cannot save the history");
    }
}

fn new_editor(users: SeenUsers) -> Option<Editor<ShellHelper, FileHistory>> {
    let config = Config::builder()
        .max_history_size(MAX_HISTORY)
        .ok()?
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        // Off: SIGTERM or SIGHUP may end the shell in the middle of a
        // readline, which would leave the user's terminal in that mode.
        .bracketed_paste(false)
        .build();
    let mut editor = Editor::with_config(config).ok()?;
    editor.set_helper(Some(ShellHelper {
        users,
        files: FilenameCompleter::new(),
    }));
    Some(editor)
}

/// Tab completion: command words, user names seen in this session, local
/// paths where a command takes one.
struct ShellHelper {
    users: SeenUsers,
    files: FilenameCompleter,
}

/// What the word being completed is.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    Command,
    User,
    LocalPath,
    Nothing,
}

/// The slot of the word that ends at the end of `before` (the line up to the
/// cursor).
fn slot(before: &str) -> Slot {
    let complete_words = words(before).unwrap_or_default();
    // The word under the cursor is a new one after whitespace.
    let index = if before.ends_with(char::is_whitespace) || complete_words.is_empty() {
        complete_words.len()
    } else {
        complete_words.len() - 1
    };
    if index == 0 {
        return Slot::Command;
    }
    let command = complete_words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    match (command.as_str(), index) {
        ("REGISTER" | "UNREGISTER" | "CONNECT" | "DISCONNECT" | "LIST_CONTENT" | "GET_FILE", 1) => {
            Slot::User
        }
        ("HELP", 1) => Slot::Command,
        ("PUBLISH", 1) | ("GET_FILE", 3) => Slot::LocalPath,
        _ => Slot::Nothing,
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start..];
        let pairs = |names: Vec<String>, suffix: &str| {
            names
                .into_iter()
                .map(|n| Pair {
                    display: n.clone(),
                    replacement: format!("{n}{suffix}"),
                })
                .collect()
        };
        match slot(before) {
            Slot::Command => {
                let upper = word.to_ascii_uppercase();
                let found = COMMAND_WORDS
                    .iter()
                    .filter(|w| w.starts_with(&upper))
                    .map(|w| (*w).to_owned())
                    .collect();
                Ok((start, pairs(found, " ")))
            }
            Slot::User => {
                let known = self.users.lock().unwrap_or_else(PoisonError::into_inner);
                let found = known
                    .iter()
                    .filter(|u| u.starts_with(word))
                    .cloned()
                    .collect();
                Ok((start, pairs(found, " ")))
            }
            Slot::LocalPath => self.files.complete(line, pos, ctx),
            Slot::Nothing => Ok((pos, vec![])),
        }
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// The terminal's mode saved at start and restored at the end: SIGTERM can
/// end the shell while rustyline has the terminal in raw mode.
#[cfg(target_os = "linux")]
mod terminal_mode {
    pub(super) type Saved = rustix::termios::Termios;

    pub(super) fn save() -> Option<Saved> {
        rustix::termios::tcgetattr(std::io::stdin()).ok()
    }

    pub(super) fn restore(saved: &Saved) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            saved,
        );
    }
}

/// Elsewhere the terminal is left as rustyline leaves it.
#[cfg(not(target_os = "linux"))]
mod terminal_mode {
    pub(super) type Saved = ();

    pub(super) fn save() -> Option<Saved> {
        None
    }

    pub(super) fn restore(_saved: &Saved) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_slots_follow_the_command() {
        assert_eq!(slot(""), Slot::Command);
        assert_eq!(slot("GET_"), Slot::Command);
        assert_eq!(slot("connect "), Slot::User);
        assert_eq!(slot("CONNECT al"), Slot::User);
        assert_eq!(slot("PUBLISH ./my"), Slot::LocalPath);
        assert_eq!(slot("PUBLISH a.txt desc"), Slot::Nothing);
        assert_eq!(slot("GET_FILE bob a.txt "), Slot::LocalPath);
        assert_eq!(slot("GET_FILE bo"), Slot::User);
        assert_eq!(slot("GET_FILE bob a"), Slot::Nothing);
        assert_eq!(slot("help LIST"), Slot::Command);
    }

    #[test]
    fn summary_names_size_time_and_rate() {
        assert_eq!(
            summary("big.bin", 3 << 20, Duration::from_secs(2)),
            "big.bin: 3.00 MiB in 2 seconds (1.50 MiB/s)"
        );
        assert_eq!(
            summary("a", 1024, Duration::from_millis(10)),
            "a: 1.00 KiB in 10 ms (100.00 KiB/s)"
        );
    }
}

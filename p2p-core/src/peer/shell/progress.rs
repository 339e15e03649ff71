//! The terminal's download progress bar (indicatif), driven through
//! [`ProgressReporter`].

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::peer::download::{ProgressReporter, TransferProgress};

/// How long a transfer runs before its progress bar appears.
pub const PROGRESS_DELAY: Duration = Duration::from_millis(500);

/// Progress bars on stderr, for transfers that take more than
/// [`PROGRESS_DELAY`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminalProgress;

impl ProgressReporter for TerminalProgress {
    fn start(&self, name: &str, size: u64) -> Box<dyn TransferProgress> {
        Box::new(Bar::new(name, size))
    }
}

/// A progress bar that appears only for transfers that take more than a
/// moment. The bar exists (hidden) from the start, so its rate and ETA count
/// from the transfer's start, not from when it shows.
struct Bar {
    bar: ProgressBar,
    shown: bool,
    size: u64,
    started: Instant,
}

impl Bar {
    fn new(name: &str, size: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(name.to_owned());
        Self {
            bar,
            shown: false,
            size,
            started: Instant::now(),
        }
    }
}

impl TransferProgress for Bar {
    fn start_at(&mut self, position: u64) {
        self.bar.set_position(position);
        self.bar.reset_eta();
    }

    fn update(&mut self, received: u64) {
        self.bar.set_position(received);
        if !self.shown && self.started.elapsed() >= PROGRESS_DELAY && received < self.size {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    fn finish(&mut self) {
        // Done, failed or stopped: no bar is left behind.
        self.bar.finish_and_clear();
    }
}

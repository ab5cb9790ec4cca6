//! Colour: whether a stream may have it, and the one painter every rendering uses.
//!
//! A leaf. Colour is used only on a terminal and never when `NO_COLOR` is set (and not empty),
//! as <https://no-color.org> asks. It does not decide what is printed.

use std::io::IsTerminal;

/// Whether colour is allowed on a stream: it is a terminal and NO_COLOR is unset or empty.
pub fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os(crate::env_vars::NO_COLOR).is_none_or(|v| v.is_empty())
}

/// Wraps text in ANSI colours, or leaves it plain.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    /// The painter for stdout: colour only when stdout is a terminal and NO_COLOR allows it.
    pub fn stdout() -> Paint {
        Paint(use_color(std::io::stdout().is_terminal()))
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    pub fn red(self, t: &str) -> String {
        self.wrap("1;31", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
    pub fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub fn cyan(self, t: &str) -> String {
        self.wrap("36", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
}

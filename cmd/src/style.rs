//! Colour: decided once from `--color`, `NO_COLOR` and whether stdout is a terminal; every
//! coloured word goes through [`Style::paint`], so `never` prints no escape code at all.

use std::ffi::OsStr;

use owo_colors::OwoColorize;

use crate::cli::ColorChoice;

/// What a piece of text means, which decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Plain,
    /// Healthy: green.
    Good,
    /// Needs attention: yellow.
    Warn,
    /// Broken: red.
    Bad,
    /// Secondary: dimmed.
    Dim,
    /// Headings: bold.
    Strong,
}

/// Whether to colour, resolved once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// `always` colours, `never` does not; `auto` colours on a terminal unless `NO_COLOR` is set
    /// to a non-empty value (<https://no-color.org>).
    pub fn resolve(choice: ColorChoice, no_color: Option<&OsStr>, terminal: bool) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(OsStr::is_empty),
        };
        Self { color }
    }

    pub fn plain() -> Self {
        Self { color: false }
    }

    pub fn colored() -> Self {
        Self { color: true }
    }

    pub fn is_colored(self) -> bool {
        self.color
    }

    /// `text` in the colour of `paint`, or unchanged without colour.
    pub fn paint(self, paint: Paint, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        match paint {
            Paint::Plain => text.to_owned(),
            Paint::Good => text.green().to_string(),
            Paint::Warn => text.yellow().to_string(),
            Paint::Bad => text.red().to_string(),
            Paint::Dim => text.dimmed().to_string(),
            Paint::Strong => text.bold().to_string(),
        }
    }

    /// `✓` in green or `✗` in red.
    pub fn mark(self, ok: bool) -> String {
        if ok {
            self.paint(Paint::Good, "✓")
        } else {
            self.paint(Paint::Bad, "✗")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_flag_no_color_and_terminal() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        let cases = [
            (ColorChoice::Auto, None, true, true),
            (ColorChoice::Auto, None, false, false),
            (ColorChoice::Auto, set, true, false),
            (ColorChoice::Auto, empty, true, true),
            (ColorChoice::Always, set, false, true),
            (ColorChoice::Never, None, true, false),
        ];
        for (choice, no_color, terminal, want) in cases {
            let style = Style::resolve(choice, no_color, terminal);
            assert_eq!(
                style.is_colored(),
                want,
                "{choice:?} NO_COLOR={no_color:?} terminal={terminal}"
            );
        }
    }

    #[test]
    fn never_prints_escape_codes() {
        let text = Style::plain().paint(Paint::Bad, "Error") + &Style::plain().mark(false);
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(Style::colored().paint(Paint::Bad, "Error").contains('\x1b'));
    }
}

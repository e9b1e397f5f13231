//! Aligned columns as kubectl prints them: upper-case headers, three spaces between columns,
//! widths measured on the text before colour is added.

use std::io::{self, Write};

use crate::style::{Paint, Style};

/// One cell: its text and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub paint: Paint,
}

impl Cell {
    pub fn new(text: impl Into<String>, paint: Paint) -> Self {
        Self {
            text: text.into(),
            paint,
        }
    }

    pub fn plain(text: impl Into<String>) -> Self {
        Self::new(text, Paint::Plain)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::plain(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::plain(text)
    }
}

/// A table with a header row.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

const GAP: &str = "   ";

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table with `indent` before every line.
    pub fn write(&self, style: Style, indent: &str, out: &mut dyn Write) -> io::Result<()> {
        let widths = self.widths();
        let header: Vec<Cell> = self.header.iter().map(|h| Cell::plain(h.clone())).collect();
        write_line(&header, &widths, style, indent, out)?;
        for row in &self.rows {
            write_line(row, &widths, style, indent, out)?;
        }
        Ok(())
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i >= widths.len() {
                    widths.push(0);
                }
                widths[i] = widths[i].max(width(&cell.text));
            }
        }
        widths
    }
}

fn write_line(
    cells: &[Cell],
    widths: &[usize],
    style: Style,
    indent: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut line = String::from(indent);
    for (i, cell) in cells.iter().enumerate() {
        let last = i + 1 == cells.len();
        line.push_str(&style.paint(cell.paint, &cell.text));
        if !last {
            let pad = widths[i] - width(&cell.text);
            line.push_str(&" ".repeat(pad));
            line.push_str(GAP);
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// Display width: one column per character (the tables hold ASCII, `✓`, `✗` and `…`).
fn width(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table, style: Style) -> String {
        let mut out = Vec::new();
        table.write(style, "", &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new(["NAME", "STATE"]);
        table.row(vec!["node-1".into(), Cell::new("Encrypted", Paint::Good)]);
        table.row(vec!["n2".into(), Cell::new("✗", Paint::Bad)]);
        assert_eq!(
            render(&table, Style::plain()),
            "NAME     STATE\nnode-1   Encrypted\nn2       ✗\n"
        );
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let mut table = Table::new(["A", "B"]);
        table.row(vec![Cell::new("ok", Paint::Good), "x".into()]);
        let colored = render(&table, Style::colored());
        let stripped = strip_escapes(&colored);
        assert_eq!(stripped, render(&table, Style::plain()));
        assert!(colored.contains('\x1b'));
    }

    fn strip_escapes(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

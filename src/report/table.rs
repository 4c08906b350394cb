//! One table, many renderers: every report section is built once as a [`Table`] (header,
//! rows of cells, and what a renderer needs beyond the text: alignment, a marker, a note),
//! and the Markdown, HTML, CSV and terminal renderers only lay it out. Before this layer each
//! renderer built its own copy of each table and their headers drifted apart.

use crate::store::record::ModelStatus;

/// How a column's cells line up. Only the HTML page aligns today; the Markdown and terminal
/// tables keep their left-aligned layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Figures, so that digits line up.
    Right,
}

/// A column: its header text, how its cells line up, and whether it is a key figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The header cell, the same words in every format.
    pub name: String,
    /// Figures align right.
    pub align: Align,
    /// Kept by the terminal's narrow table (the key figures); the pages show every column.
    pub key: bool,
}

/// A column described once: header, alignment, whether it is a key figure, and how a row fills
/// its cell. A table built from these cannot pair a header with another column's cell, as
/// position-matched lists of headers and cells could.
pub struct ColumnSpec<'a, R> {
    name: &'a str,
    align: Align,
    key: bool,
    cell: Box<dyn Fn(&R) -> Cell + 'a>,
}

impl<'a, R> ColumnSpec<'a, R> {
    /// A text column (left-aligned).
    pub fn text<C: Into<Cell>>(name: &'a str, cell: impl Fn(&R) -> C + 'a) -> Self {
        Self::new(name, Align::Left, cell)
    }

    /// A column of figures (right-aligned).
    pub fn figure<C: Into<Cell>>(name: &'a str, cell: impl Fn(&R) -> C + 'a) -> Self {
        Self::new(name, Align::Right, cell)
    }

    fn new<C: Into<Cell>>(name: &'a str, align: Align, cell: impl Fn(&R) -> C + 'a) -> Self {
        ColumnSpec {
            name,
            align,
            key: false,
            cell: Box::new(move |r| cell(r).into()),
        }
    }

    /// Marks the column as a key figure, kept when the terminal narrows the table.
    pub fn key(self) -> Self {
        self.key_if(true)
    }

    /// Marks the column as a key figure when `key` holds: a column that matters only when
    /// something went wrong (failures, a model's status).
    pub fn key_if(mut self, key: bool) -> Self {
        self.key = key;
        self
    }
}

/// What a cell is beyond its text, for the renderers that can show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Plain text.
    None,
    /// A model status: a coloured pill in HTML, bold in Markdown when it is not `ok`.
    Status(ModelStatus),
    /// A model name led by its chart colour (the `i`-th series), so the page's table reads as
    /// the legend of its charts.
    Swatch(usize),
    /// A warning a reader must not miss (`YES` under client bottleneck): bold.
    Strong,
    /// An error message: wraps and shows in red on the page.
    Error,
    /// The row's name in a key/value table (environment): a header cell on the page.
    Key,
}

/// One cell: plain text (each renderer escapes it) and its mark.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The text, unescaped.
    pub text: String,
    /// What else the cell is.
    pub mark: Mark,
}

impl Cell {
    /// A plain cell.
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            mark: Mark::None,
        }
    }

    /// A cell with a mark.
    pub fn marked(text: impl Into<String>, mark: Mark) -> Cell {
        Cell {
            text: text.into(),
            mark,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::new(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::new(text)
    }
}

/// One row, with whether it is the row a reader must look at (a failed model, a level the
/// client limited): highlighted on the page.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The cells, one per column.
    pub cells: Vec<Cell>,
    /// Highlight the row.
    pub alert: bool,
}

impl Row {
    /// A row of cells.
    pub fn new(cells: Vec<Cell>) -> Row {
        Row {
            cells,
            alert: false,
        }
    }
}

/// A report table: how to read it, the header, the rows, and what qualifies the figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// How to read the cells, printed above the table.
    pub intro: Option<String>,
    /// The header.
    pub columns: Vec<Column>,
    /// The rows, each with one cell per column.
    pub rows: Vec<Row>,
    /// What qualifies the figures (the SLO, the energy price), printed below the table.
    pub notes: Vec<String>,
}

impl Table {
    /// A table with these columns, each `(name, align)`, and no rows yet.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| Column {
                    name: (*name).to_string(),
                    align: *align,
                    key: true,
                })
                .collect(),
            ..Table::default()
        }
    }

    /// A table from column descriptions and rows; `alert` says which rows to highlight.
    pub fn build<R>(
        columns: &[ColumnSpec<'_, R>],
        rows: impl IntoIterator<Item = R>,
        alert: impl Fn(&R) -> bool,
    ) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.name.to_string(),
                    align: c.align,
                    key: c.key,
                })
                .collect(),
            rows: rows
                .into_iter()
                .map(|r| Row {
                    cells: columns.iter().map(|c| (c.cell)(&r)).collect(),
                    alert: alert(&r),
                })
                .collect(),
            ..Table::default()
        }
    }

    /// The same table with its key columns only (every column when none is marked key).
    pub fn key_columns(&self) -> Table {
        if !self.columns.iter().any(|c| c.key) {
            return self.clone();
        }
        let keep: Vec<bool> = self.columns.iter().map(|c| c.key).collect();
        let pick = |cells: &[Cell]| -> Vec<Cell> {
            cells
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c.clone())
                .collect()
        };
        Table {
            intro: self.intro.clone(),
            columns: self.columns.iter().filter(|c| c.key).cloned().collect(),
            rows: self
                .rows
                .iter()
                .map(|r| Row {
                    cells: pick(&r.cells),
                    alert: r.alert,
                })
                .collect(),
            notes: self.notes.clone(),
        }
    }

    /// Adds a row; its cell count must match the header.
    pub fn push(&mut self, row: Row) {
        debug_assert_eq!(row.cells.len(), self.columns.len(), "{:?}", self.columns);
        self.rows.push(row);
    }

    /// The header texts.
    pub fn header(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

"""The theme tables as an .xlsx workbook: one sheet per table, readable as it opens and as it prints."""

from __future__ import annotations

import io
import math
import re
from copy import copy
from typing import Any

from qualcode.analysis.counts import Table
from qualcode.vocabulary import Paper

WIDEST_COLUMN = 80
WRAPPED_WIDTH = {"text": 60, "memo": 30, "definition": 40, "include": 30, "exclude": 30, "keywords": 30, "phrases": 30, "exact": 20,
                 "examples": 40, "label": 24}  # columns whose text wraps at this width: a printed page stays readable
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,10})?$")
POINTS_PER_LINE = 15
TALLEST_ROW = 409  # points: the most a spreadsheet row may be
RESPONDENTS_NOTE = "Each cell counts the transcript's segments coded with the column's code (a parent counts its children's)."


CELL_LIMIT = 32_767  # characters a spreadsheet cell holds; Excel refuses a workbook with more in one cell
CUT_MARK = " [... cut: the whole text is in the CSV exports]"


_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # what an .xlsx (XML 1.0) cannot hold


def cell(value: Any) -> Any:
    """A table value as a file holds it: empty for None or NaN, numbers as numbers, text within a cell's limit, a
    control character that a workbook cannot hold (from a file name, a metadata cell) shown as '\ufffd'."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, str) and _ILLEGAL.search(value):
        value = _ILLEGAL.sub("\ufffd", value)
    if isinstance(value, str) and len(value) > CELL_LIMIT:
        return value[: CELL_LIMIT - len(CUT_MARK)] + CUT_MARK
    return value


MAX_ROWS = 1_048_576  # a sheet's rows, header included
MAX_COLUMNS = 16_384


def workbook_bytes(tables: dict[str, Table], notes: list[str] | None = None, *, paper: Paper = Paper.A4) -> bytes:
    """One sheet per table: frozen bold header, set widths, numbers as numbers, text never as a formula,
    percentages as fractions with a heat map on one 0-100% scale, printable on landscape pages one wide (``paper``: A4
    or Letter). A table may name the columns worth printing (``attrs['printed']``: the excerpts' text and who, not
    offsets): only those go into the workbook, the CSV has the rest.

    Sheets are streamed (openpyxl's write-only mode), so memory does not grow with the cells; a table larger
    than a sheet holds is cut to it, and ``notes`` is told what was cut (the CSV exports hold it whole)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for name, table in tables.items():
        table = _printed(table)
        sheet = workbook.create_sheet(name[:31])
        rows, columns = min(len(table.rows), MAX_ROWS - 1), min(len(table.columns), MAX_COLUMNS)
        if (rows, columns) != (len(table.rows), len(table.columns)) and notes is not None:
            notes.append(f"themes.xlsx: sheet '{name}' holds the first {rows:,} rows and {columns:,} columns of {len(table.rows):,} x "
                         f"{len(table.columns):,} (a spreadsheet's limit); the CSV export has all of it")
        _print_setup(sheet, paper)  # before the first row: a streamed sheet writes its properties with it
        _Sheet(sheet, name, table, rows, columns).write()
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class _Sheet:
    """One table written row by row: every style is set on the cell as it is made, row heights before their row."""

    def __init__(self, sheet: Any, name: str, table: Table, rows: int, columns: int) -> None:
        self.sheet, self.name, self.table, self.rows, self.columns = sheet, name, table, rows, columns
        self.names = table.columns[:columns]

    def write(self) -> None:
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter

        sheet, table = self.sheet, self.table
        sheet.freeze_panes = "B2" if self.name.startswith(("Summary", "By ", "Respondents")) else "A2"
        widths: dict[int, int] = {}
        for index, column in enumerate(self.names, start=1):
            lengths = [len(str(column))] + [len(str(cell(row[index - 1]))) for row in table.rows[:500]]
            widths[index] = max(8, min(WRAPPED_WIDTH.get(column, WIDEST_COLUMN), max(lengths) + 2))
            sheet.column_dimensions[get_column_letter(index)].width = widths[index]
        bold, fill, top = Font(bold=True), PatternFill("solid", fgColor="DDE4EE"), Alignment(wrap_text=True, vertical="top")
        header = []
        for column in self.names:
            heading = self._cell(column)
            heading.font, heading.fill, heading.alignment = bold, fill, top
            header.append(heading)
        if table.attrs.get("code_columns"):
            from openpyxl.comments import Comment

            header[0].comment = Comment(RESPONDENTS_NOTE, "qualcode", width=300, height=80)
            sheet.oddHeader.center.text = "Segments coded, per transcript and code"
        sheet.append(header)
        percent = {index for index, column in enumerate(self.names) if column.endswith(": %")}
        # Wrapped cells need rows tall enough for their lines, or a spreadsheet draws long texts over the rows below.
        wrapped = {index for index, column in enumerate(self.names) if column in WRAPPED_WIDTH and (column != "label" or "text" in self.names)}
        # A metadata value that is a plain number (staff_count: 12) is stored as one, so a formula can use it;
        # anything else (an id like 007, a date) stays text, as written.
        numeric = {index for index, column in enumerate(self.names) if column in table.attrs.get("attributes", ())}
        indent_at = self.names.index("label") if table.attrs.get("frequency") and "label" in self.names else None
        depths = table.attrs.get("depths", [])
        # Styles are set once on a template and copied: openpyxl compares every style it is given with those it has.
        percent_style, wrapped_style, top_style = self._cell(0), self._cell(""), self._cell("")
        percent_style.number_format, wrapped_style.alignment, top_style.alignment = "0.0%", top, Alignment(vertical="top")
        for number, row in enumerate(table.rows[: self.rows]):
            values: list[Any] = []
            lines = 1
            for index in range(self.columns):
                value = cell(row[index])
                if index in numeric and isinstance(value, str) and _NUMBER.match(value):
                    value = float(value) if "." in value else int(value)
                if index in percent and isinstance(value, (int, float)):
                    item = self._styled(value / 100, percent_style)  # a fraction, shown as a percent, so formulas can use it
                elif index in wrapped:
                    item = self._styled(value, wrapped_style)
                    per_line = max(1, widths[index + 1] - 2)
                    lines = max(lines, sum(max(1, math.ceil(len(part) / per_line)) for part in str(value).split("\n")))
                elif index == indent_at and number < len(depths) and depths[number] > 0:
                    item = self._cell(value)
                    item.alignment = Alignment(indent=2 * depths[number])  # child codes under their parent, as in the terminal
                elif wrapped:  # beside a wrapped text, every cell starts at the top of its row, where the text starts
                    item = self._styled(value, top_style)
                else:
                    values.append(self._plain(value))
                    continue
                values.append(item)
            if lines > 1:
                sheet.row_dimensions[number + 2].height = min(TALLEST_ROW, lines * POINTS_PER_LINE)
            sheet.append(values)
        self._heat_maps()

    def _cell(self, value: Any) -> Any:
        from openpyxl.cell import WriteOnlyCell

        item = WriteOnlyCell(self.sheet, value=value)
        if item.data_type == "f":  # openpyxl takes any string starting with '=' for a formula; text must stay text
            item.data_type = "s"
        return item

    def _styled(self, value: Any, template: Any) -> Any:
        item = self._cell(value)
        item._style = copy(template._style)
        return item

    def _plain(self, value: Any) -> Any:
        return self._cell(value) if isinstance(value, str) and value.startswith("=") else value

    def _heat_maps(self) -> None:
        from openpyxl.formatting.rule import ColorScaleRule
        from openpyxl.utils import get_column_letter

        table, last = self.table, self.rows + 1
        if last < 2:
            return
        if table.attrs.get("frequency"):
            ranges = [f"{get_column_letter(i)}3:{get_column_letter(i)}{last}" for i, c in enumerate(self.names, start=1) if c.endswith(": %")]
            if ranges:  # row 2 is N, left plain
                # One scale for every group: 50% is the same colour whether the group has 2 respondents or 20.
                self.sheet.conditional_formatting.add(
                    " ".join(ranges),
                    ColorScaleRule(start_type="num", start_value=0, start_color="FFFFFF", end_type="num", end_value=1, end_color="F8696B"),
                )
        codes = [column for column in table.attrs.get("code_columns", ()) if column in self.names]
        if codes:
            first, end = get_column_letter(self.names.index(codes[0]) + 1), get_column_letter(self.names.index(codes[-1]) + 1)
            self.sheet.conditional_formatting.add(
                f"{first}2:{end}{last}", ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="63BE7B"))


def _printed(table: Table) -> Table:
    """The table with only the columns it names for print (in that order), its other attributes kept."""
    chosen = table.attrs.get("printed")
    if not chosen:
        return table
    index = [table.columns.index(column) for column in chosen if column in table.columns]
    return Table([table.columns[i] for i in index], [[row[i] for i in index] for row in table.rows], table.attrs)


def _print_setup(sheet: Any, paper: Paper) -> None:
    """Landscape, one page wide, on A4 or Letter, the header row on every page."""
    from openpyxl.worksheet.worksheet import Worksheet

    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_LETTER if paper == Paper.LETTER else Worksheet.PAPERSIZE_A4
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"

"""The theme tables as an .xlsx workbook: one sheet per table, readable as it opens and as it prints."""

from __future__ import annotations

import io
import math
from typing import Any

from qualcode.analysis import Table

WIDEST_COLUMN = 80
POINTS_PER_LINE = 15
TALLEST_ROW = 409  # points: the most a spreadsheet row may be
RESPONDENTS_NOTE = "Each cell counts the transcript's segments coded with the column's code (a parent counts its children's)."


CELL_LIMIT = 32_767  # characters a spreadsheet cell holds; Excel refuses a workbook with more in one cell
CUT_MARK = " [... cut: the whole text is in the CSV exports]"


def cell(value: Any) -> Any:
    """A table value as a file holds it: empty for None or NaN, numbers as numbers, text within a cell's limit."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, str) and len(value) > CELL_LIMIT:
        return value[: CELL_LIMIT - len(CUT_MARK)] + CUT_MARK
    return value


def workbook_bytes(tables: dict[str, Table]) -> bytes:
    """One sheet per table: frozen bold header, set widths, numbers as numbers, text never as a formula,
    percentages as fractions with a heat map on one 0-100% scale, printable on landscape pages one wide."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, table in tables.items():
        sheet = workbook.create_sheet(name[:31])
        _fill(sheet, table)
        _layout(sheet, name, table)
        if table.attrs.get("frequency"):
            _frequency_formats(sheet, table)
        if table.attrs.get("code_columns"):
            _matrix_formats(sheet, table)
        _print_setup(sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _fill(sheet: Any, table: Table) -> None:
    percent_columns = {index for index, column in enumerate(table.columns) if column.endswith(": %")}
    sheet.append(table.columns)
    for row in table.rows:
        values = [cell(value) for value in row]
        for index in percent_columns:
            if isinstance(values[index], (int, float)):
                values[index] = values[index] / 100  # a fraction, shown with a percent format, so formulas can use it
        sheet.append(values)
    # openpyxl takes any string starting with '=' for a formula; a transcript's text must stay text.
    for row in sheet.iter_rows(min_row=1):
        for item in row:
            if item.data_type == "f":
                item.data_type = "s"


def _layout(sheet: Any, name: str, table: Table) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    for heading in sheet[1]:
        heading.font = Font(bold=True)
        heading.fill = PatternFill("solid", fgColor="DDE4EE")
        heading.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "B2" if name.startswith(("Summary", "By ", "Respondents")) else "A2"
    widths: dict[int, int] = {}
    for index, column in enumerate(table.columns, start=1):
        values = [len(str(column))] + [len(str(cell(row[index - 1]))) for row in table.rows[:500]]
        widths[index] = max(8, min(WIDEST_COLUMN, max(values) + 2))
        sheet.column_dimensions[get_column_letter(index)].width = widths[index]
    wrapped = [index for index, column in enumerate(table.columns, start=1) if column in ("text", "memo", "definition", "include", "exclude")]
    if not wrapped:
        return
    # Wrapped cells need rows tall enough for their lines, or a spreadsheet draws long texts over the rows below.
    top = Alignment(wrap_text=True, vertical="top")
    for row_number, row in enumerate(table.rows, start=2):
        lines = 1
        for index in wrapped:
            sheet.cell(row=row_number, column=index).alignment = top
            text = str(cell(row[index - 1]))
            per_line = max(1, widths[index] - 2)
            lines = max(lines, sum(max(1, math.ceil(len(part) / per_line)) for part in text.split("\n")))
        if lines > 1:
            sheet.row_dimensions[row_number].height = min(TALLEST_ROW, lines * POINTS_PER_LINE)


def _frequency_formats(sheet: Any, table: Table) -> None:
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    last = len(table.rows) + 1
    if last < 2:
        return
    ranges = []
    for index, column in enumerate(table.columns, start=1):
        if column.endswith(": %"):
            letter = get_column_letter(index)
            for percent_cell in sheet[letter][1:]:
                percent_cell.number_format = "0.0%"
            ranges.append(f"{letter}3:{letter}{last}")  # row 2 is N, left plain
    if ranges:
        # One scale for every group: 50% is the same colour whether the group has 2 respondents or 20.
        sheet.conditional_formatting.add(
            " ".join(ranges),
            ColorScaleRule(start_type="num", start_value=0, start_color="FFFFFF", end_type="num", end_value=1, end_color="F8696B"),
        )
    # Child codes indented under their parent, as in the terminal table.
    if "label" in table.columns:
        label_column = table.columns.index("label") + 1
        for row_number, depth in enumerate(table.attrs.get("depths", []), start=2):
            if depth > 0:
                sheet.cell(row=row_number, column=label_column).alignment = Alignment(indent=2 * depth)


def _matrix_formats(sheet: Any, table: Table) -> None:
    from openpyxl.comments import Comment
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.utils import get_column_letter

    code_columns = table.attrs["code_columns"]
    sheet["A1"].comment = Comment(RESPONDENTS_NOTE, "qualcode", width=300, height=80)
    sheet.oddHeader.center.text = "Segments coded, per transcript and code"
    if not table.rows:
        return
    first = get_column_letter(table.columns.index(code_columns[0]) + 1)
    last = get_column_letter(table.columns.index(code_columns[-1]) + 1)
    sheet.conditional_formatting.add(
        f"{first}2:{last}{len(table.rows) + 1}",
        ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="63BE7B"),
    )


def _print_setup(sheet: Any) -> None:
    """Landscape, one page wide, the header row on every page."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"

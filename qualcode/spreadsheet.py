"""The theme tables as an .xlsx workbook: one sheet per table, readable as it opens."""

from __future__ import annotations

import io
from typing import Any

from qualcode.analysis import Table

WIDEST_COLUMN = 80


def cell(value: Any) -> Any:
    """A table value as a file holds it: empty for None or NaN, numbers as numbers."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value


def workbook_bytes(tables: dict[str, Table]) -> bytes:
    """One sheet per table: frozen bold header, set widths, numbers as numbers, heat map on summary counts."""
    from openpyxl import Workbook
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, table in tables.items():
        sheet = workbook.create_sheet(name[:31])
        header = table.columns
        rows = [[cell(value) for value in row] for row in table.rows]
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        for heading in sheet[1]:
            heading.font = Font(bold=True)
            heading.fill = PatternFill("solid", fgColor="DDE4EE")
            heading.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.freeze_panes = "B2" if name.startswith(("Summary", "By ", "Respondents")) else "A2"
        for index, column in enumerate(header, start=1):
            values = [len(str(column))] + [len(str(row[index - 1])) for row in rows[:500]]
            width = min(WIDEST_COLUMN, max(values) + 2)
            sheet.column_dimensions[get_column_letter(index)].width = max(8, width)
            if column == "text":
                for text_cell in sheet[get_column_letter(index)][1:]:
                    text_cell.alignment = Alignment(wrap_text=True, vertical="top")
        if table.attrs.get("frequency") and rows:
            # Heat map on the respondent counts of the code rows (row 2 is N, left plain).
            for index, column in enumerate(header, start=1):
                if column.endswith(": respondents") or column.endswith(": segments"):
                    letter = get_column_letter(index)
                    sheet.conditional_formatting.add(
                        f"{letter}3:{letter}{len(rows) + 1}",
                        ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="F8696B"),
                    )
                if column.endswith(": %"):
                    for percent_cell in sheet[get_column_letter(index)][1:]:
                        percent_cell.number_format = "0.0"
        code_columns = table.attrs.get("code_columns")
        if code_columns and rows:
            first = get_column_letter(header.index(code_columns[0]) + 1)
            last = get_column_letter(header.index(code_columns[-1]) + 1)
            sheet.conditional_formatting.add(
                f"{first}2:{last}{len(rows) + 1}",
                ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="63BE7B"),
            )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()

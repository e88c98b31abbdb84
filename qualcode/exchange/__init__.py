"""Stage 6, exchange: what leaves the project. Spreadsheets, CSV tables, the quotes appendix, and REFI-QDA
projects and codebooks, written and read back.
"""

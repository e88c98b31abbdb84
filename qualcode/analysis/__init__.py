"""Stage 5, analysis: counting what the project holds. Theme frequencies by respondent group, agreement between
coders, the machine and gold files, and review progress. Reads the store; never suggests or writes.
"""

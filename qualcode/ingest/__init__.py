"""Stage 1, ingest: transcripts come in. Reading each file format, decoding, front matter and metadata,
segmenting into speaker turns and coding segments, and reading REFI-QDA archives safely.
"""

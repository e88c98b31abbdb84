"""qualcode: deductive coding of interview transcripts with spaCy suggestions and human review."""

__version__ = "0.1.0"

"""Stage 4, review: a coder's decisions. The review session (a state machine with injected keys and clock) and the
orders in which segments are shown.
"""

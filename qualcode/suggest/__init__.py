"""Stage 2, suggest: the spaCy pipeline that suggests codes. The rule component and its scoring, sentence vectors,
the learned models and their training, and the spec a worker needs to build the same pipeline anywhere.
"""

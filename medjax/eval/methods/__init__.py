"""One module per evaluation method; each maps (lm, questions, shots, options) to predictions."""

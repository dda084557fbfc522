"""Corpus sources, truncation sampling, teachers and the activation store."""

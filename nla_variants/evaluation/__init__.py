"""Scoring an NLA: the one rollout scorer (RL's reward and evaluation's round trip), the
evaluation a trial runs, per-row scores, faithfulness against ground-truth properties, and the
meaning-kept rewrites of explanations. Imports no training code: training imports it."""

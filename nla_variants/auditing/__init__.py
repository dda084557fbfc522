"""Auditing evals (issue 28): does an NLA reveal what a model organism hides, better than reading
its transcript? `reveal` scores explanations against the hidden property."""

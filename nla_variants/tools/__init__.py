"""Commands that use a trained NLA: `nla evaluate` (score it again), `nla search` (the AR as a
query encoder), `nla steer` (edit an explanation, write its reconstruction back) and
`nla compare --cross` (each trial's AR reads every trial's explanations)."""

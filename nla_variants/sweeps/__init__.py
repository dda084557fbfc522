"""The sweep engine behind `nla sweep` and `nla compare`; the studies it runs live in ablations/.

The flow, one module each:

    spec.py      a sweep config -> a validated Sweep (base trial, search space, seeds, objectives)
    storage.py   where the Optuna study lives (SQLite in the sweep directory, or a shared URL)
    runner.py    SweepRunner: the study, each trial = run_trial over k seeds, resume, best.yaml
    progress.py  one line per trial stage: trial i/n, seed, stage, elapsed, estimate for the rest
    report.py    the comparison table (rich, CSV, Markdown) and plots

Nothing is imported here: `nla explain` and `nla compare` load only what they use.
"""

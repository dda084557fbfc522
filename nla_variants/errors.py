"""User-facing errors: one line naming the problem and the fix; the CLI exits 2 on them."""


class NLAError(Exception):
    """A bad input the user can fix. The message is one line: the problem, then the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} (fix: {fix})" if fix else problem)


class TrialStopped(Exception):
    """Raised by a trial's reporter to end it early (a sweep's pruner); not a failure."""

"""The one exception type the library raises for invalid props."""


class PropsError(ValueError):
    """Props that AWS would reject, or that would weaken a secure default unnoticed.

    Raised at synth time, before anything reaches CloudFormation. Messages are
    lowercase sentences that show the bad value.
    """

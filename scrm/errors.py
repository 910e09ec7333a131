class ApplicationError(Exception):
    """An expected business refusal, shown to the user as ``message``."""

    def __init__(self, message: str, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

"""How a start that cannot go ahead is answered: JupyterHub's SpawnException (JupyterHub 6), so
the user reads the message as it is ("Invalid spawn option gpus: ..."), not "HTTP 400: error
(...)", and the hub logs one line, no traceback."""

from jupyterhub.spawner import SpawnException

#: the reason label of JupyterHub's spawn-failure metric, by HTTP status
REASONS = {400: "options", 403: "forbidden", 404: "not-found", 409: "busy", 503: "unavailable"}


def refused(status, message, reason=None):
    return SpawnException(
        message, reason=reason or REASONS.get(status, "error"), status_code=status
    )

"""A full disk under the hub's state directory (its database, the job list, the key store): a
request that had to write there is answered ``507 Insufficient Storage`` naming the full disk,
not ``500 Internal Server Error``; the database session is rolled back, so the hub goes on
serving, and writes work again as soon as there is room (no restart)."""

import errno
import sqlite3

from tornado import web

MESSAGE = "The hub's disk is full ({why}): nothing was changed. An admin must free space on it."


def disk_full(exc):
    """Why ``exc`` (or what caused it) is a full disk, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc.strerror or str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return str(exc)  # SQLITE_FULL: "database or disk is full"
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException) and disk_full(orig):
            return disk_full(orig)
        exc = exc.__cause__ or exc.__context__
    return None


def install():
    """Answer a full disk with 507 in every hub handler (JupyterHub's and gpulab's pages)."""
    from jupyterhub.handlers.base import BaseHandler

    if getattr(BaseHandler, "_gpulab_disk_full", False):
        return
    original = BaseHandler._handle_request_exception

    def _handle_request_exception(self, e):
        why = disk_full(e)
        if why is None:
            return original(self, e)
        self.log.error(
            "gpulab: %s %s: the disk is full: %s", self.request.method, self.request.path, why
        )
        try:
            self.db.rollback()  # the shared session must not stay in its failed transaction
        except Exception:
            self.log.exception("gpulab: rolling back the database session failed")
        try:
            raise web.HTTPError(507, MESSAGE.format(why=why)) from e
        except web.HTTPError as refused:
            return original(self, refused)

    BaseHandler._handle_request_exception = _handle_request_exception
    BaseHandler._gpulab_disk_full = True

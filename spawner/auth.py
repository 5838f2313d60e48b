"""gpulab's sign-up login: NativeAuthenticator without its two weak spots.

* **No admin by race.** NativeAuthenticator pre-approves a sign-up whose name is listed in
  ``admin_users``: whoever signs up first as ``admin`` becomes admin. Here such names cannot
  sign up; the first admin is created on the hub's machine with ``gpulab admin create NAME``
  (:func:`create_account`).
* **Password checks off the event loop.** bcrypt takes a few hundred milliseconds by design;
  NativeAuthenticator runs it on the hub's single event loop, so a flood of logins froze the
  hub for everyone. Here checks run in a thread pool (``password_check_threads``, one by
  default: a flood uses at most one core, the rest wait their turn) and every user keeps NativeAuthenticator's lock-out after
  ``allowed_failed_logins`` failures.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import Int

# A real bcrypt hash of a random string: unknown users cost as much time as known ones.
_DUMMY_HASH = bcrypt.hashpw(b"gpulab-no-such-user", bcrypt.gensalt(rounds=12))


class GPULabNativeAuthenticator(NativeAuthenticator):
    password_check_threads = Int(
        1,
        help="""
        Password checks (bcrypt) that may run at once, off the hub's event loop. Example: ``1``
        (the default: a login flood uses at most one core). More logins than this wait their
        turn; the hub keeps answering everything else.
        """,
    ).tag(config=True)

    _pool = None

    @property
    def _checks(self):
        cls = type(self)
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(max(1, self.password_check_threads), thread_name_prefix="gpulab-bcrypt")
        return cls._pool

    def create_user(self, username, password, **kwargs):
        """Sign-up from the web: names listed as admins are reserved for ``gpulab admin create``."""
        if self.normalize_username(username) in self.admin_users:
            self.log.warning("Refused a sign-up as admin name %r: create admins with `gpulab admin create`", username)
            return None
        return super().create_user(username, password, **kwargs)

    async def authenticate(self, handler, data):
        username = self.normalize_username(data["username"])
        password = data["password"].encode()
        user = self.get_user(username)
        if self.allowed_failed_logins and self.is_blocked(username):
            return None
        stored = user.password if user is not None else _DUMMY_HASH
        loop = asyncio.get_running_loop()
        valid = await loop.run_in_executor(self._checks, _check, password, stored)
        validations = [user is not None, valid, user is not None and user.is_authorized]
        if user is not None and user.has_2fa:
            validations.append(user.is_valid_token(data.get("2fa")))
        if all(validations):
            self.successful_login(username)
            return username
        self.add_login_attempt(username)
        return None


def _check(password, stored):
    try:
        return bcrypt.checkpw(password, stored)
    except ValueError:  # a malformed stored hash
        return False


def create_account(db, username, password, *, rounds=12):
    """Create (or reset) an approved native account; for ``gpulab admin create``.

    ``db`` is a SQLAlchemy session on the hub's database.
    """
    from sqlalchemy import inspect

    if "users_info" not in inspect(db.bind).get_table_names():
        UserInfo.__table__.create(db.bind)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds))
    info = UserInfo.find(db, username)
    if info is None:
        info = UserInfo(username=username, password=hashed, is_authorized=True)
        db.add(info)
    else:
        info.password = hashed
        info.is_authorized = True
    db.commit()
    return info

"""gpulab's sign-up login: NativeAuthenticator without its two weak spots.

* **No admin by race.** NativeAuthenticator pre-approves a sign-up whose name is listed in
  ``admin_users``: whoever signs up first as ``admin`` becomes admin. Here such names cannot
  sign up; the first admin is created on the hub's machine with ``gpulab admin create NAME``
  (:func:`create_account`).
* **Password hashing off the event loop.** bcrypt takes a few hundred milliseconds by design;
  NativeAuthenticator runs it on the hub's single event loop (at every login and every sign-up),
  so a flood of either froze the hub for everyone. Here checks run in a thread pool (``password_check_threads``, one by
  default: a flood uses at most one core, the rest wait their turn), at most :data:`MAX_WAITING` wait (more are
  refused at once: memory stays bounded), and NativeAuthenticator's lock-out after ``allowed_failed_logins``
  failures is kept per name *and source address*: someone guessing a name from elsewhere does not lock its owner out,
  and the table of attempts is bounded (:data:`MAX_TRACKED`).
"""

import asyncio
import collections
import functools
import socket
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from jinja2 import ChoiceLoader, FileSystemLoader
from jupyterhub.handlers import login as login_handlers
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from tornado.escape import url_escape
from tornado.httputil import url_concat
from traitlets import Int

MAX_PASSWORD = 1024  # characters hashed for a sign-up at most (bcrypt reads 72 bytes anyway)
MAX_WAITING = 200  # password checks that may wait for the pool; more logins are refused at once
MAX_TRACKED = 10000  # (name, source) pairs whose failures are remembered; the oldest are forgotten


class BoundedAttempts(collections.OrderedDict):
    """NativeAuthenticator's failed-login table, bounded: the oldest entries go first."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > MAX_TRACKED:
            self.popitem(last=False)


class SignUpHandler(native_handlers.SignUpHandler):
    """NativeAuthenticator's sign-up, with the new password hashed in the check pool first."""

    async def post(self):
        auth = self.authenticator
        password = self.get_body_argument("signup_password", "", strip=False)
        key = None
        if password and len(password) <= MAX_PASSWORD and not auth.allow_self_approval_for:
            key = (
                auth.normalize_username(self.get_body_argument("username", "", strip=False)),
                password,
            )
            auth._prehashed[key] = await auth.hash_password(password)
        try:
            return await super().post()
        finally:
            if key:
                auth._prehashed.pop(key, None)


class LoginHandler(login_handlers.LoginHandler, native_handlers.LocalBase):
    """NativeAuthenticator's login page on the JupyterHub of today (its own handler uses the
    statsd client and the page signature that JupyterHub 6 removed), and without its second
    password check on the event loop: the authenticator already tells an account waiting for
    approval from a wrong password."""

    _sync_templates = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # NativeAuthenticator adds its templates to the async environment only; an error on the
        # login form (an expired form, say) renders the page synchronously
        env = self.settings.get("jinja2_env_sync")
        if env is not None and not LoginHandler._sync_templates:
            env.loader = ChoiceLoader(
                [env.loader, FileSystemLoader([native_handlers.TEMPLATE_DIR])]
            )
            LoginHandler._sync_templates = True

    def _render(self, login_error=None, username=None, **kwargs):
        auth = self.authenticator
        kwargs.pop("custom_html", None)
        return self.render_template(
            "native-login.html",
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=auth.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=auth.enable_signup,
            two_factor_auth=auth.allow_2fa,
            authenticator_login_url=url_concat(
                auth.login_url(self.hub.base_url), {"next": self.get_argument("next", "")}
            ),
            **kwargs,
        )

    async def post(self):
        data = {
            name: self.get_argument(name, strip=name == "username")
            for name in self.request.body_arguments
            if name != "_xsrf"
        }
        data.setdefault("username", "")
        data.setdefault("password", "")
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        username = data["username"][:64]
        if getattr(self, "_gpulab_waiting_for_approval", False):
            error = f"User {username} has not been authorized by an administrator yet."
        else:
            error = "Invalid username or password."
        self.set_status(403)
        self.finish(await self._render(login_error=error, username=username))


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prehashed = {}  # (username, password) -> bcrypt hash, for the sign-up under way
        self.login_attempts = BoundedAttempts()  # keyed by "name\0source address"
        self._waiting = 0

    def get_handlers(self, app):
        ours = {
            native_handlers.SignUpHandler: SignUpHandler,
            native_handlers.LoginHandler: LoginHandler,
        }
        return [(route, ours.get(handler, handler)) for route, handler in super().get_handlers(app)]

    async def hash_password(self, password):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._checks, lambda: bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        )

    @property
    def _checks(self):
        cls = type(self)
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(
                max(1, self.password_check_threads), thread_name_prefix="gpulab-bcrypt"
            )
        return cls._pool

    def create_user(self, username, password, **kwargs):
        """Sign-up from the web: names listed as admins are reserved for ``gpulab admin create``.

        The password was hashed off the event loop by the sign-up handler; NativeAuthenticator's
        own checks (name, strength, sign-up open) and approval rules apply unchanged.
        """
        username = self.normalize_username(username)
        if username in self.admin_users:
            self.log.warning(
                "Refused a sign-up as admin name %r: create admins with `gpulab admin create`",
                username,
            )
            return None
        hashed = self._prehashed.pop((username, password), None)
        if hashed is None:
            return super().create_user(username, password, **kwargs)
        if (
            self.user_exists(username)
            or not self.validate_username(username)
            or not self.is_password_strong(password)
            or not self.enable_signup
        ):
            return None
        infos = {"username": username, "password": hashed, **kwargs}
        if self.open_signup or username in self.get_authed_users():
            infos["is_authorized"] = True
        try:
            user_info = UserInfo(**infos)
        except AssertionError:  # UserInfo's own validation (e.g. the e-mail)
            return None
        self.db.add(user_info)
        self.db.commit()
        return user_info

    async def authenticate(self, handler, data):
        username = self.normalize_username(data["username"])
        password = data["password"].encode()
        source = client_address(handler)
        key = f"{username}\0{source}"  # the lock-out is per name and source address
        user = self.get_user(username)
        if self.allowed_failed_logins and self.is_blocked(key):
            return None
        if self._waiting >= MAX_WAITING:
            self.log.warning(
                "Refused a login of %r from %s: %d password checks are waiting",
                username,
                source,
                self._waiting,
            )
            return None
        stored = user.password if user is not None else _DUMMY_HASH
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            valid = await loop.run_in_executor(self._checks, _check, password, stored)
        finally:
            self._waiting -= 1
        validations = [user is not None, valid, user is not None and user.is_authorized]
        if handler is not None and user is not None and valid and not user.is_authorized:
            handler._gpulab_waiting_for_approval = True  # the page says so (the password was right)
        if user is not None and user.has_2fa:
            validations.append(user.is_valid_token(data.get("2fa")))
        if all(validations):
            self.successful_login(key)
            return username
        self.add_login_attempt(key)
        return None


def signups_waiting(user):
    """For every hub page (a template variable JupyterHub calls with the page's user): how many
    sign-ups wait for an admin's approval, for admins only (0 for everyone else)."""
    if user is None or not getattr(user, "admin", False) or getattr(user, "db", None) is None:
        return 0
    try:
        return user.db.query(UserInfo).filter(UserInfo.is_authorized.is_(False)).count()
    except Exception:  # no sign-up table (another authenticator): nothing waits
        return 0


@functools.lru_cache(maxsize=256)
def is_own_address(ip):
    """Whether ``ip`` is an address of this machine (or of the hub's container): the proxy's
    connections come from one, whichever of the hub's addresses it dials (a Docker bridge's
    gateway, an overlay address); a user's container or the network never does."""
    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
        return True
    except (OSError, ValueError):
        return False


def client_address(handler):
    """Where a login comes from, as far as it can be trusted: the connection's own peer, or, for a
    connection from this machine (the hub's proxy), the address the proxy appended to
    X-Forwarded-For. A client's own X-Real-Ip or X-Forwarded-For entries are never believed: an
    attacker rotating them would otherwise escape the lock-out."""
    request = getattr(handler, "request", None)
    if request is None:
        return ""
    context = getattr(request.connection, "context", None)
    peer = getattr(context, "_orig_remote_ip", None) or request.remote_ip or ""
    if peer and is_own_address(peer):
        forwarded = request.headers.get("X-Forwarded-For", "")
        return forwarded.split(",")[-1].strip() or peer
    return peer


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

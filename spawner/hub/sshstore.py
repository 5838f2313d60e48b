"""Where SSH keys, container password hashes and admin SSH settings are kept.

One SQLite file in the hub's state directory.  Keys are stored by hub user name;
nothing is stored unless it was validated by :mod:`.keys` first.
"""

import os
import sqlite3
import time
from contextlib import closing

from ..core.ssh.keys import PublicKey

MAX_KEYS_PER_USER = 20
SETTINGS = ("password_login", "sudo")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ssh_keys (
    username TEXT NOT NULL, fingerprint TEXT NOT NULL, type TEXT NOT NULL, blob TEXT NOT NULL,
    comment TEXT NOT NULL, bits INTEGER NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (username, fingerprint));
CREATE TABLE IF NOT EXISTS ssh_passwords (username TEXT PRIMARY KEY, hash TEXT NOT NULL, changed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ssh_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(ValueError):
    pass


class SSHStore:
    """The store at ``path``. Nothing is created until :meth:`create` (the hub's startup) or first use."""

    def __init__(self, path):
        self.path = path
        self._ready = False

    def create(self):
        """Create the file (0600, in a 0700 directory) and its tables; idempotent."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        with _Tx(db) as db:
            db.executescript(_SCHEMA)
        os.chmod(self.path, 0o600)
        self._ready = True
        return self

    def _db(self):
        if not self._ready:
            self.create()
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return _Tx(db)

    # --- keys ---

    def keys(self, username):
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM ssh_keys WHERE username = ? ORDER BY added", (username,)
            ).fetchall()
        return [
            PublicKey(r["type"], r["blob"], r["comment"], r["bits"], r["fingerprint"]) for r in rows
        ]

    def add_key(self, username, key):
        with self._db() as db:
            if db.execute(
                "SELECT 1 FROM ssh_keys WHERE username = ? AND fingerprint = ?",
                (username, key.fingerprint),
            ).fetchone():
                raise StoreError(f"key {key.fingerprint} is already registered")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM ssh_keys WHERE username = ?", (username,)
            ).fetchone()
            if count >= MAX_KEYS_PER_USER:
                raise StoreError(f"at most {MAX_KEYS_PER_USER} keys per user; remove one first")
            db.execute(
                "INSERT INTO ssh_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, key.fingerprint, key.type, key.blob, key.comment, key.bits, time.time()),
            )

    def remove_key(self, username, fingerprint):
        with self._db() as db:
            return (
                db.execute(
                    "DELETE FROM ssh_keys WHERE username = ? AND fingerprint = ?",
                    (username, fingerprint),
                ).rowcount
                > 0
            )

    # --- container passwords (hashes only) ---

    def password_hash(self, username):
        with self._db() as db:
            row = db.execute(
                "SELECT hash FROM ssh_passwords WHERE username = ?", (username,)
            ).fetchone()
        return row["hash"] if row else None

    def set_password_hash(self, username, hashed):
        if not hashed.startswith("$2b$"):
            raise StoreError("only bcrypt hashes are stored")
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO ssh_passwords VALUES (?, ?, ?)",
                (username, hashed, time.time()),
            )

    def clear_password(self, username):
        with self._db() as db:
            db.execute("DELETE FROM ssh_passwords WHERE username = ?", (username,))

    # --- admin settings (override the site file's defaults) ---

    def setting(self, name, default):
        assert name in SETTINGS, name
        with self._db() as db:
            row = db.execute("SELECT value FROM ssh_settings WHERE name = ?", (name,)).fetchone()
        return default if row is None else row["value"] == "1"

    def policy(self, password_login, sudo):
        """(password_login, sudo): what an admin set on the SSH page, else the given defaults."""
        return self.setting("password_login", password_login), self.setting("sudo", sudo)

    def set_setting(self, name, value):
        assert name in SETTINGS, name
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO ssh_settings VALUES (?, ?)", (name, "1" if value else "0")
            )


class _Tx:
    """Commit on success, roll back on error, always close."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        return self.db

    def __exit__(self, exc_type, *_):
        with closing(self.db):
            if exc_type is None:
                self.db.commit()
            else:
                self.db.rollback()

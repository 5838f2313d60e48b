"""SSH public keys and container passwords: validation, fingerprints, hashing.

Pure functions, no I/O.  Keys are parsed from the OpenSSH wire format (RFC 4253
section 6.6, RFC 5656, RFC 8709), so a key that only *looks* right is rejected.
Passwords are hashed with bcrypt (``$2b$``), which the container's libxcrypt (PAM,
/etc/shadow) verifies natively.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import bcrypt

MAX_KEY_LINE = 8192  # a 16384-bit RSA key is about 2.8 kB
MAX_COMMENT = 200
MIN_RSA_BITS = 2048
PASSWORD_MIN, PASSWORD_MAX = 10, 72  # bcrypt uses at most 72 bytes
BCRYPT_ROUNDS = 11

_EC_CURVES = {
    "ecdsa-sha2-nistp256": ("nistp256", 65),
    "ecdsa-sha2-nistp384": ("nistp384", 97),
    "ecdsa-sha2-nistp521": ("nistp521", 133),
}
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    *_EC_CURVES,
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_COMMENT = re.compile(r"[\x20-\x7e]*")


class InvalidInput(ValueError):
    """A public key or password that is not acceptable; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: str  # base64, as in authorized_keys
    comment: str
    bits: int
    fingerprint: str  # "SHA256:...", as ssh-keygen -l prints it

    def line(self):
        return f"{self.type} {self.blob} {self.comment}".rstrip()


def _read_string(data, pos):
    if pos + 4 > len(data):
        raise InvalidInput("the key data is truncated")
    n = int.from_bytes(data[pos : pos + 4], "big")
    end = pos + 4 + n
    if end > len(data):
        raise InvalidInput("the key data is truncated")
    return data[pos + 4 : end], end


def _fields(data, count):
    out, pos = [], 0
    for _ in range(count):
        value, pos = _read_string(data, pos)
        out.append(value)
    if pos != len(data):
        raise InvalidInput("the key data has trailing bytes")
    return out


def _bits(key_type, data):
    """Check the wire-format body of a key of ``key_type``; return its size in bits."""
    if key_type == "ssh-ed25519":
        _, pk = _fields(data, 2)
        if len(pk) != 32:
            raise InvalidInput("an ed25519 key must be 32 bytes")
        return 256
    if key_type == "sk-ssh-ed25519@openssh.com":
        _, pk, app = _fields(data, 3)
        if len(pk) != 32 or not app:
            raise InvalidInput("malformed sk-ed25519 key")
        return 256
    if key_type == "ssh-rsa":
        _, e, n = _fields(data, 3)
        e, n = int.from_bytes(e, "big"), int.from_bytes(n, "big")
        if e < 3 or e % 2 == 0 or n % 2 == 0:
            raise InvalidInput("malformed RSA key")
        if n.bit_length() < MIN_RSA_BITS:
            raise InvalidInput(
                f"RSA key is {n.bit_length()} bits; at least {MIN_RSA_BITS} are required"
            )
        return n.bit_length()
    if key_type in _EC_CURVES or key_type == "sk-ecdsa-sha2-nistp256@openssh.com":
        sk = key_type.startswith("sk-")
        curve, point_len = _EC_CURVES["ecdsa-sha2-nistp256" if sk else key_type]
        values = _fields(data, 4 if sk else 3)
        if values[1] != curve.encode():
            raise InvalidInput(f"curve {values[1][:20]!r} does not match key type {key_type}")
        if len(values[2]) != point_len or values[2][0] != 4:
            raise InvalidInput("malformed ECDSA public point")
        return {"nistp256": 256, "nistp384": 384, "nistp521": 521}[curve]
    raise InvalidInput(f"unsupported key type {key_type!r}")


def parse_public_key(text):
    """Parse one ``type base64 [comment]`` line. Raises InvalidInput with a reason."""
    if not isinstance(text, str):
        raise InvalidInput("the key must be text")
    if len(text) > MAX_KEY_LINE:
        raise InvalidInput(f"the key is longer than {MAX_KEY_LINE} characters")
    text = text.strip()
    if not text:
        raise InvalidInput("the key is empty")
    if "PRIVATE KEY" in text[:200]:
        raise InvalidInput(
            "this is a PRIVATE key: it was not stored. Never paste it anywhere (if you did so "
            "elsewhere, make a new key); paste the public one, the .pub file (e.g. ~/.ssh/id_ed25519.pub)"
        )
    if "\n" in text or "\r" in text:
        raise InvalidInput("paste exactly one key (one line)")
    parts = text.split(None, 2)
    if parts[0] not in KEY_TYPES:
        if parts[0].startswith("-----BEGIN"):
            raise InvalidInput("this is a private key or PEM file; paste the .pub file instead")
        raise InvalidInput(
            f"unsupported key type {parts[0][:40]!r} (use one of: {', '.join(KEY_TYPES)}); options before the key are not allowed"
        )
    if len(parts) < 2:
        raise InvalidInput("the key data is missing after the type")
    key_type, blob = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the key data is not valid base64")
    inner_type, _ = _read_string(data, 0)
    if inner_type != key_type.encode():
        raise InvalidInput(
            f"the key data says {inner_type[:40].decode('ascii', 'replace')!r}, not {key_type!r}"
        )
    bits = _bits(key_type, data)
    if len(comment) > MAX_COMMENT or not _COMMENT.fullmatch(comment):
        raise InvalidInput(
            f"the comment must be printable ASCII of at most {MAX_COMMENT} characters"
        )
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return PublicKey(key_type, base64.b64encode(data).decode(), comment, bits, f"SHA256:{digest}")


def check_password(password):
    if not isinstance(password, str) or not password:
        raise InvalidInput("the password is empty")
    raw = password.encode("utf-8")
    if len(raw) > PASSWORD_MAX:
        raise InvalidInput(f"the password is longer than {PASSWORD_MAX} bytes")
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"the password must have at least {PASSWORD_MIN} characters")
    if any(ord(ch) < 32 for ch in password):
        raise InvalidInput("the password contains control characters")
    return raw


def hash_password(password, rounds=BCRYPT_ROUNDS):
    """A salted bcrypt hash (``$2b$...``) usable as-is in /etc/shadow."""
    return bcrypt.hashpw(check_password(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password, hashed):
    return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))

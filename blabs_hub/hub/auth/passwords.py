"""Password rules and hashing: pure functions, no database and no JupyterHub.

Hashes are argon2id with argon2-cffi's parameters (RFC 9106 low-memory profile unless
configured otherwise). Verification is argon2's own constant-time comparison, never ``==``
on strings. ``needs_rehash`` lets the login path upgrade old hashes when the parameters are
raised, without asking anyone to change their password.

Length is bounded before hashing: argon2 itself accepts any length, but hashing a megabyte
on every failed login is a cheap way to burn the hub's CPU, so anything over
``max_length`` is refused as a policy violation (new passwords) or as a wrong password
(logins), after the same amount of work as a real check.
"""

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Passwords every scanner tries first; refusing them costs nothing and catches the worst.
COMMON_PASSWORDS = frozenset(
    {
        "admin",
        "administrator",
        "password",
        "password1",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "letmein",
        "welcome",
        "changeme",
        "jupyterhub",
        "bretterlabs",
    }
)

# No 0/O, 1/l/I: a temporary password is read off a screen and typed by hand.
TEMP_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class PasswordPolicy:
    """The minimum rules for a new password (see ``BlabsAuthenticator.password_*``)."""

    min_length: int = 10
    max_length: int = 1024
    forbid_common: bool = True


def policy_problems(
    new: str, *, username: str, policy: PasswordPolicy, old: str | None = None
) -> list[str]:
    """Why ``new`` may not become ``username``'s password; an empty list means it may.

    Messages are shown to the user as they are, so they say what to do.
    """
    problems = []
    if len(new) < policy.min_length:
        problems.append(f"The new password must have at least {policy.min_length} characters.")
    if len(new) > policy.max_length:
        problems.append(f"The new password must have at most {policy.max_length} characters.")
    if new.strip() == "":
        problems.append("The new password cannot be empty or only spaces.")
    if old is not None and new == old:
        problems.append("The new password must differ from the current one.")
    if username and new.casefold() == username.casefold():
        problems.append("The new password must differ from the username.")
    if policy.forbid_common and new.casefold() in COMMON_PASSWORDS:
        problems.append("This password is too common; choose another one.")
    return problems


def make_hasher(time_cost: int | None = None, memory_cost: int | None = None) -> PasswordHasher:
    """An argon2id hasher; ``None`` keeps argon2-cffi's defaults (what production uses)."""
    kwargs = {}
    if time_cost:
        kwargs["time_cost"] = time_cost
    if memory_cost:
        kwargs["memory_cost"] = memory_cost
    return PasswordHasher(**kwargs)


def hash_password(hasher: PasswordHasher, password: str) -> str:
    return hasher.hash(password)


def verify_password(hasher: PasswordHasher, stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False for any mismatch or bad hash.

    A missing hash (an account that has no password yet) still costs one verification
    against a throw-away hash, so that it cannot be told apart by timing.
    """
    if not stored_hash:
        verify_password(hasher, dummy_hash(hasher), password)
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASHES: dict[tuple, str] = {}


def dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random secret with ``hasher``'s parameters, made once per parameter set.

    Verifying against it makes "no such user" cost the same as "wrong password".
    """
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[key]


def needs_rehash(hasher: PasswordHasher, stored_hash: str) -> bool:
    try:
        return hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def temporary_password(groups: int = 4, group_length: int = 4) -> str:
    """A random password an admin can read out, e.g. ``k7Qm-8vTz-pR3d-Xh2n`` (~95 bits)."""
    return "-".join(
        "".join(secrets.choice(TEMP_ALPHABET) for _ in range(group_length)) for _ in range(groups)
    )

"""Test accounts with known passwords, written straight into the authenticator's table.

The account pages themselves are specified in ``tests/auth``; other suites only need a
signed-in student, so they skip the admin's temporary-password round trip.
"""

import asyncio

from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from blabs_hub.dbutil import make_engine
from blabs_hub.hub.auth import store
from tests.harness import off_the_loop


def add_account(hub, username: str, password: str) -> str:
    """Create hub user ``username`` with ``password`` (no forced change); return a token."""
    token = hub.create_user(username)
    engine = make_engine(f"sqlite:///{hub.data_dir}/jupyterhub.sqlite")
    try:
        with Session(engine) as db:
            cred = store.ensure_row(db, username)
            change = store.set_password(
                db, cred, password, hasher=PasswordHasher(), must_change=False
            )
            off_the_loop(asyncio.run, change)
    finally:
        engine.dispose()
    return token

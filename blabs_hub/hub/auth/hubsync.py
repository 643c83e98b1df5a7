"""Keep JupyterHub's user record in step with our credentials row.

Two things JupyterHub cannot do by itself: make the bootstrap admin a hub admin at its
first real login (``Authenticator.admin_users`` would re-grant admin at every start, so an
admin could never be demoted), and give every hub admin the ``blabs-admin`` role beside
JupyterHub's fixed ``admin`` role. Roles are granted with JupyterHub's own helpers on the
hub's session; ``Authenticator.manage_roles`` stays off so that ``load_roles`` may bind the
``instructor`` role to the ``instructors`` group.
"""

from jupyterhub import orm, roles

BLABS_ADMIN_ROLE = "blabs-admin"


def sync_user(db, orm_user, cred) -> None:
    """Apply a pending admin grant; make ``blabs-admin`` match the hub admin flag."""
    changed = False
    if (
        cred is not None
        and cred.grant_admin
        and cred.password_hash
        and not cred.must_change_password
    ):
        if not orm_user.admin:
            orm_user.admin = True
            roles.assign_default_roles(db, entity=orm_user)
        cred.grant_admin = False
        changed = True
    role = orm.Role.find(db, BLABS_ADMIN_ROLE)
    if role is not None:
        has = role in orm_user.roles
        if orm_user.admin and not has:
            roles.grant_role(db, orm_user, role, commit=False)
            changed = True
        elif has and not orm_user.admin:
            roles.strip_role(db, orm_user, role, commit=False)
            changed = True
    if changed:
        db.commit()

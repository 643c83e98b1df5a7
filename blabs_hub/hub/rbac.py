"""Bretter Labs' permissions, as JupyterHub RBAC custom scopes and roles.

The blabs service checks these scopes on every request; JupyterHub grants them through
roles. JupyterHub's own ``admin`` role cannot be extended, so hub admins get the
``blabs-admin`` role beside it (the authenticator assigns it), instructors get
``instructor``, and every user may reach the service at all through the ``user`` role.
"""

SERVICE_NAME = "blabs"
INSTRUCTORS_GROUP = "instructors"

CUSTOM_SCOPES = {
    "custom:blabs:images": {
        "description": "Upload, list and delete the disk images labs boot from.",
    },
    "custom:blabs:templates": {
        "description": "Create, edit, enable, disable and delete lab templates.",
    },
    "custom:blabs:settings": {
        "description": "Change the live limits and the idle timeout.",
    },
    "custom:blabs:reports": {
        "description": "Read lab usage reports.",
    },
}

ALL_BLABS_SCOPES = sorted(CUSTOM_SCOPES)
INSTRUCTOR_SCOPES = ["custom:blabs:templates", "custom:blabs:reports"]

# What a user's OAuth token for the service may carry (intersected with the user's own
# permissions by the hub): the blabs scopes, and enough to stop one's own labs.
SERVICE_OAUTH_SCOPES = [*ALL_BLABS_SCOPES, "servers!user", "read:users!user"]


def roles() -> list[dict]:
    """Role definitions for ``JupyterHub.load_roles``. Users get them from the
    authenticator, the admin panel or the REST API; the service's own role is bound here."""
    return [
        {
            "name": "blabs-service",
            "description": "The blabs service itself: sees who runs which lab (in-use guards).",
            "scopes": ["list:users", "read:servers"],
            "services": [SERVICE_NAME],
        },
        {
            "name": "user",
            "description": "Every signed-in user: their own labs, and the blabs pages.",
            "scopes": ["self", f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": "blabs-admin",
            "description": "Everything in the blabs service: images, templates, settings.",
            "scopes": [*ALL_BLABS_SCOPES, f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": "instructor",
            "description": "Manage lab templates, launch links and usage reports.",
            "scopes": [
                *INSTRUCTOR_SCOPES,
                "read:users:name",
                f"access:services!service={SERVICE_NAME}",
            ],
            # Admins make someone an instructor by adding them to this group in the
            # hub's admin panel (or with the REST API).
            "groups": [INSTRUCTORS_GROUP],
        },
    ]

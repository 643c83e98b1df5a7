"""Labs as local processes (being built)."""

from jupyterhub.spawner import LocalProcessSpawner


class BlabsLocalSpawner(LocalProcessSpawner):
    """For now a plain local process spawner; the lab runtime is wired in next."""

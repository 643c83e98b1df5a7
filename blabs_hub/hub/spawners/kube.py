"""Labs as Kubernetes pods (not built yet: see the README's status table)."""

from jupyterhub.spawner import Spawner


class BlabsKubeSpawner(Spawner):
    """Placeholder so the entry point resolves; starting a lab says it is not built yet."""

    async def start(self):
        raise NotImplementedError(
            "BlabsKubeSpawner is not built yet: use the local spawner (BLABS_SPAWNER=blabs-local)"
        )

    async def poll(self):
        return 0

    async def stop(self, now=False):
        return None

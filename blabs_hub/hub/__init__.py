"""The hub side: what runs inside the JupyterHub process (authenticator, spawners,
admission) and how the hub is told about the blabs service and its permissions."""

"""The two spawners: labs as local processes, or as Kubernetes pods. Same lab runtime."""

"""The container runtime (no click): containers on disk, their namespaces,
processes, terminals, logs, networks and volumes.
"""

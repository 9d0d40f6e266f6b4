"""The Docker Engine API served over a unix socket (``dockish system
service``): ``server`` is the HTTP/1.1 layer, ``containers``, ``images``
and ``system`` map Docker's endpoints to the engine, ``runtime`` holds what
the engine does not offer yet."""

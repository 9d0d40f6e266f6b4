"""The Docker Engine API served over a unix socket (``dockish system
service``): ``server`` is the HTTP/1.1 layer, ``containers``, ``images``
and ``system`` map Docker's endpoints to the engine (``Engine(detach_via=
"fresh")``: a server's monitors come from a fresh process, not its forks)."""

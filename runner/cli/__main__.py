"""``python -m runner.cli``: the ``dockish`` command."""
from .main import main

main()

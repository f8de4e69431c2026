"""``python -m atlas``: the command line, as torchrun starts it (``torchrun ... -m atlas sweep``)."""

from atlas.cli import main

main()

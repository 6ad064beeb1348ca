"""`python -m enet ...`: the same CLI as the `enet` script (torchrun uses this entry)."""

from enet.cli import main

if __name__ == "__main__":
    main()

"""Train a conditional GAN: a thin wrapper over ``gandistill train`` (same flags)."""

import sys

from gandistill.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

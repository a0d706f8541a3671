"""The benchmark table: a thin wrapper over ``gandistill benchmark`` (same flags).

Example (2-core CPU, several hours: 8 methods × 2 IPCs, 10 minutes per optimised set)::

    python scripts/benchmark.py --generator checkpoints/mnist5k/generator.pt \\
        --ipc 1,10 --minutes 10 --seeds 1 --out checkpoints/benchmark
"""

import sys

from gandistill.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))

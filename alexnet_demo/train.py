"""`python -m alexnet_demo.train`: see cli.train_main (the engine itself is training.train)."""
import sys

from .cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())

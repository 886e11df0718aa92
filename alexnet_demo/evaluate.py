"""`python -m alexnet_demo.evaluate --checkpoint PATH`: overall and per-class test accuracy, JSON last."""
import sys

from .cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())

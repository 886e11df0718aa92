"""`python -m alexnet_demo.push --checkpoint PATH --repo-id OWNER/NAME`: upload to the Hub (token: HF_TOKEN)."""
import sys

from .cli import push_main

if __name__ == "__main__":
    sys.exit(push_main())

"""Entry point: `python app.py` serves the demo locally; a Hugging Face Space runs this same file."""
from alexnet_demo.ui import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)

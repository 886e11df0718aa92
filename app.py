"""Entry point: `python app.py` serves the demo locally; a Hugging Face Space runs this same file."""
try:  # on a ZeroGPU Space, `spaces` must be imported before anything touches CUDA
    import spaces  # noqa: F401
except ImportError:
    pass

from alexnet_demo.ui import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)

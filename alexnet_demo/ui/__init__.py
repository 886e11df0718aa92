"""The Gradio app, one module per tab (drawing, photo, inside, training, model); `app` assembles and launches it."""
from .app import build_demo, launch

__all__ = ["build_demo", "launch"]

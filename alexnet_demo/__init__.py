"""AlexNet on MNIST and CIFAR-10: models, a streaming training engine, inference, explanations and a Gradio demo.

The engine is `alexnet_demo.training.train` (not re-exported here, so that `alexnet_demo.train`, the command line
module, never shadows it or is shadowed by it).
"""
from .config import TrainConfig, recipe_config
from .inference import load_classifier
from .models import build_model

__all__ = ["build_model", "load_classifier", "TrainConfig", "recipe_config"]

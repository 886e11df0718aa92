"""AlexNet on MNIST and CIFAR-10: models, a streaming training engine, inference and a Gradio demo."""
from .inference import load_classifier
from .models import build_model
from .training import TrainConfig, train

__all__ = ["build_model", "load_classifier", "TrainConfig", "train"]

"""enet: train, evaluate and compare EfficientNet and XResNet image classifiers."""

__version__ = "0.1.0"

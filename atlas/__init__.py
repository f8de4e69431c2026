"""Atlas: a browsable, Distill-like atlas of the features and circuits of a vision model."""

__version__ = "0.1.0"

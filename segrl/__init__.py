"""segrl: segment-level credit assignment for RL fine-tuning of vision-language models."""

__version__ = "0.1.0"

"""spillover: build and audit model organisms of out-of-context generalization."""

__version__ = "0.1.0"

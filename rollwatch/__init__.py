"""rollwatch: roll AI features back when a model change starts hurting users."""

__version__ = "0.1.0"

__all__ = ["__version__"]

"""lungfast: compare image backbones on LC25000 lung histopathology and ship the winner."""

from lungfast.errors import LungfastError

__version__ = "0.1.0"
__all__ = ["LungfastError", "__version__"]

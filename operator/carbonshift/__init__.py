"""carbonshift: run flexible batch work when and where electricity is greenest."""

__version__ = "0.1.0"

"""CoE: a composition of experts behind one OpenAI-compatible endpoint."""

__version__ = "0.1.0"

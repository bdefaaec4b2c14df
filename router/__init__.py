"""Switchyard: a high-throughput OpenAI-compatible API router."""

__version__ = "0.1.0"

"""curate: data curation and tokenization for LLM pretraining."""

__version__ = "0.1.0"

"""An accessible multi-format publishing pipeline: one YAML article → PDF, EPUB, large-print HTML, audio."""

__version__ = "0.1.0"

"""govstream: event pipeline for grassroots governance (report, form-submission, alert)."""

__version__ = "0.1.0"

"""Throughput, latency and scale-out of the pipeline, measured side by side (``make bench``)."""

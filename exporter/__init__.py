"""The unified NVIDIA/AMD GPU exporter.

Backends (`exporter.backends`) read devices; the collector (`exporter.collector`) reads them all
once per cycle off the scrape path; `exporter.exposition` turns a snapshot into the dcgm-exporter
compatible text format; `exporter.server` serves the last rendered snapshot.
"""

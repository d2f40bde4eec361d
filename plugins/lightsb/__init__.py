"""Placeholder package; the plugin lands with its issue."""

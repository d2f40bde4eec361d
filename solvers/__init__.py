"""Runnable solver examples (``sciml run NAME``): one problem, one plugin, a printed result and a figure."""

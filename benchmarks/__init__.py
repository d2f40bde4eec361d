"""Side-by-side benchmarks against the tools users would otherwise pick (``sciml bench NAME``)."""

"""First-party sciml plugins, installed as ``sciml_plugins`` and registered through entry points."""

"""Command-line tools (console scripts): operator, offline and fleet tools."""

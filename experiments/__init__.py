"""absl binaries (run as `python -m experiments.<name>` from the repository root)."""

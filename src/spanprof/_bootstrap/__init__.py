"""Zero-code bootstrap used by ``spanprof run`` (this directory goes on PYTHONPATH)."""

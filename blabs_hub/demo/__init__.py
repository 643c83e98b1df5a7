"""Demo content: a small real guest image built from Debian packages."""

"""A third-party backend used by the tests: it samples each column on its own from the stats."""

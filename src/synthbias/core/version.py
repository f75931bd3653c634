"""The package version (here rather than in ``synthbias/__init__``, so that modules recording it
in their results do not import the root package, which lazily imports the API above them)."""

__version__ = "0.1.0"

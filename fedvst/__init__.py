"""fedvst: the phone side (video pipeline), shared plumbing and the ``fedvst`` command line."""

__version__ = "0.1.0"

"""The engine's exception types. Every message is meant to be shown to a person as it is."""


class CombinerError(Exception):
    """Base class of every error the engine raises on bad input."""


class CmbFormatError(CombinerError):
    """A `.cmb` file cannot be read: bad magic, unknown version, truncated, checksum mismatch, bad field."""


class PriorError(CmbFormatError):
    """A prior is missing, unreadable or does not fit the signal (e.g. the prior a file names is not installed)."""


class MediaError(CombinerError):
    """An input image or audio file cannot be read or is not a signal the codec handles."""

"""fcam's exceptions: every error a user can cause is one of these, with a message that names
the file, line or key at fault and what was expected."""


class FcamError(Exception):
    """Base class of all errors fcam reports to users as one line."""


class ConfigError(FcamError):
    """A parameter or command-line value is missing, of the wrong type or out of range."""


class DataError(FcamError):
    """A dataset file (metadata, image, mask, archive) is missing or malformed."""


class DownloadError(DataError):
    """A download failed, or the downloaded bytes do not match the expected checksum."""


class CheckpointError(FcamError):
    """A checkpoint is missing, unreadable or does not fit the model."""

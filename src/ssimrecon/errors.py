"""Exception types whose messages are shown to users as-is by the CLI."""


class SsimreconError(Exception):
    """A user-facing error: bad input, bad config, corrupt file. The message names the culprit."""


class DownloadError(SsimreconError):
    """A download failed or its checksum did not match."""


class ArchiveError(SsimreconError):
    """An archive is unsafe or unreadable."""


class VolumeError(SsimreconError):
    """A NIfTI volume cannot be read or has the wrong shape."""


class ShardError(SsimreconError):
    """An HDF5 shard is missing, incomplete or of another format."""


class FastMRIError(SsimreconError):
    """A fastMRI HDF5 file is unreadable or not of the published layout; names the file and key."""


class CheckpointError(SsimreconError):
    """A checkpoint or model bundle cannot be loaded safely."""


class ConfigError(SsimreconError):
    """The experiment config, or the settings a stage was handed, are invalid; names the key."""


class DiskFullError(SsimreconError, OSError):
    """A write ran out of disk space (ENOSPC/EDQUOT); the message names the file not written.

    Also an :class:`OSError` (``errno`` ENOSPC), so callers that handle I/O errors still see it."""

    def __str__(self) -> str:
        return str(self.strerror)

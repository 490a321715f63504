"""Exceptions that carry a message meant for the user."""


class SerError(Exception):
    """Base class: the message says what went wrong and what to do."""


class ConfigError(SerError):
    """params.yaml holds a bad value (the message names the key)."""


class DatasetError(SerError):
    """A corpus is missing, empty or laid out differently than expected."""


class DownloadError(SerError):
    """A download failed for good (after retries)."""


class FeatureError(SerError):
    """A feature extractor cannot be built (e.g. its model is neither cached nor reachable)."""


class ModelError(SerError):
    """The models folder is missing, incomplete or does not match this code's features."""

"""stackgen: put Jellyfin on the internet behind a reverse proxy, correctly, every time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stackgen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

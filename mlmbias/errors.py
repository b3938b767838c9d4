"""Exceptions raised for bad input, outside any jitted code."""


class ConfigError(ValueError):
    """Invalid study configuration, DGP parameter or user input.

    The message names the offending field and the allowed range, so that the
    command line can print it as one line.
    """

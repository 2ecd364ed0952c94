"""Real proxy + Jellyfin stacks for other projects' tests (shipped in the wheel).

The pytest plugin (`stackgen.testing.plugin`, registered through the `pytest11` entry
point) offers the `stackgen_stack` fixture; `StackHandle` is what it returns. Importing
this package does not import pytest, so the handle and Pebble work in any script.
"""

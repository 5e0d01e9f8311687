"""The package imports and its native core loads on this interpreter."""

import importlib
import sys


def test_native_extension_loads_for_this_interpreter():
    native = importlib.import_module("spanprof._native")
    assert native.__name__ == "spanprof._native"
    assert f"cpython-{sys.version_info[0]}{sys.version_info[1]}" in native.__file__

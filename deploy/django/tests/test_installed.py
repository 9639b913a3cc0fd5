"""Which copy of vigil_django the tests import (see run-tests.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import django

import vigil_django

SOURCE = Path(__file__).resolve().parent.parent / "vigil_django"


def test_imports_the_copy_under_test():
    imported = Path(vigil_django.__file__).resolve().parent
    if os.environ.get("VIGIL_DJANGO_EXPECT_INSTALLED") == "1":
        # VIGIL_DJANGO_MIN=1: `pip install ./deploy/django` as users do,
        # with the oldest Django supported.
        assert imported != SOURCE and "site-packages" in str(imported), imported
        assert django.VERSION[:2] == (4, 2), django.get_version()
    else:
        # The editable install of the development venv.
        assert imported == SOURCE, imported

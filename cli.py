#!/usr/bin/env python
"""Thin runnable entry for a checkout: ``python cli.py build --strategy distant``.

The Typer app lives in ``scoremix_ds.cli`` (installed as the ``scoremix-ds`` console script).
"""

import sys

from scoremix_ds.cli import main

if __name__ == "__main__":
    sys.exit(main())

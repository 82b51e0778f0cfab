"""Config fingerprints: the one rule that names what a config makes (a build's rows, a training's weights, a
reproduce stage's output) by a short hash of its content.

A fingerprint is ``sha256`` of the config's payload as JSON with sorted keys, truncated to ``digits`` hex digits.
Two spellings exist, both kept bit for bit so every existing build, checkpoint and cached stage stays recognised:

- builds and trainings: 16 digits; builds use compact separators (``","`` / ``":"``), trainings JSON's default
  (``", "`` / ``": "``);
- reproduce stages: 12 digits, compact.

A payload leaves out the fields that change how a run is carried out, never what it makes, and (through
:func:`~scoremix_ds.core.recipes.without_added_fields`) the fields added later while they hold the value older
configs behaved as. Content digests of loaded WEIGHTS are :mod:`.digest` (they need torch).

>>> config_fingerprint({"b": 1, "a": [1, 2]})
'3813f9409eb0095b'
>>> config_fingerprint({"b": 1, "a": [1, 2]}, digits=12, compact=True)
'94a786c3662b'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .recipes import json_ready

COMPACT = (",", ":")


def config_fingerprint(payload: Any, digits: int = 16, compact: bool = False) -> str:
    """``sha256`` of ``payload`` as sorted-key JSON (``compact``: no spaces after separators), first ``digits`` hex
    digits. Tuples count as lists and paths as their text, as in the saved configs."""
    text = json.dumps(json_ready(payload), sort_keys=True, separators=COMPACT if compact else None)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]

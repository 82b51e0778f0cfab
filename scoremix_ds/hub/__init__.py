"""Publishing scoremix-ds datasets and trained models to the Hugging Face Hub, versioned by git tags.

- ``folder_check.py``: is a local folder a complete dataset, exactly as its build left it?
- ``stage.py``: the files that are pushed (the folder's own, the card's load snippet pointed at the repo).
- ``client.py``: token, repo id, and turning client exceptions into one-line ``ScoreMixError``s.
- ``push.py``: ``publish`` — create the repo, upload, tag the exact commit that was pushed — and ``push_dataset``.
- ``push_model.py``: ``push_model`` — a trained model folder through the same ``publish``.
- ``versions.py``: ``list_versions`` — the tags of a repo with the build config of each.

The Hub is reached only through ``huggingface_hub``; datasets 5.x loads what is pushed with no code from here.
"""

from .push import PushConfig, PushResult, push_dataset
from .push_model import ModelPushConfig, push_model
from .folder_check import verify_dataset
from .versions import Version, list_versions

__all__ = ["PushConfig", "PushResult", "push_dataset", "ModelPushConfig", "push_model", "verify_dataset", "Version", "list_versions"]

"""Publishing scoremix-ds datasets and trained models to the Hugging Face Hub, versioned by git tags.

- ``folder_check.py``: is a local folder a complete dataset, exactly as its build left it?
- ``stage.py``: the files that are pushed (the folder's own, the card's load snippet pointed at the repo).
- (the token, the repo id and the ONE mapping of client exceptions to one-line errors are
  :mod:`scoremix_ds.core.hub_client`, which model downloads share);
- ``push.py``: ``publish`` — create the repo, upload, tag the exact commit that was pushed — and ``push_dataset``.
- ``push_model.py`` / ``push_generator.py``: a trained model / generator folder through the same ``publish``
  (checked by its files; the caller passes the loader that must accept it: publishing knows no model class);
- ``versions.py``: ``list_versions`` — the tags of a repo with the build config of each.

The Hub is reached only through ``huggingface_hub``; datasets 5.x loads what is pushed with no code from here.
"""

from .push import PushConfig, PushResult, push_dataset
from .push_model import ModelPushConfig, push_model
from .folder_check import verify_dataset
from .versions import Version, list_versions

__all__ = ["PushConfig", "PushResult", "push_dataset", "ModelPushConfig", "push_model", "verify_dataset", "Version", "list_versions"]

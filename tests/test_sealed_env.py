"""``tests/conftest.py`` seals every test off from the developer's Hugging Face login and caches and switches
progress bars off. Shown the only way that can fail: a small test session in a fresh process whose environment,
like a logged-in developer's shell, HAS every token variable, a token file and a cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

INNER = '''
import os
import subprocess
import sys

# imported when the module is collected, before any fixture runs, like the test modules that import scoremix_ds:
# huggingface_hub has read the developer's environment by then
import datasets
import huggingface_hub
import tqdm
from huggingface_hub import constants
import pytest


@pytest.fixture(scope="module")
def module_view():
    """What a module-scoped fixture (set up before any test's own fixtures) sees."""
    return huggingface_hub.get_token(), constants.HF_TOKEN_PATH, tqdm.tqdm(range(1)).disable


def test_no_token_no_real_cache_no_bars(module_view):
    real = os.environ["SEAL_TEST_REAL_HOME"]
    token, token_path, bar_disabled = module_view
    assert token is None and not token_path.startswith(real) and bar_disabled
    assert os.environ["SEAL_TEST_MARK"] == "set before the session"  # the session did start with the tokens below
    assert sorted(k for k, v in os.environ.items() if v.startswith(("hf_from", "an-oidc"))) == []
    assert huggingface_hub.get_token() is None  # neither the variables nor the token files were read
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_ASSETS_CACHE", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):
        assert not getattr(constants, name).startswith(real), name
    assert not str(datasets.config.HF_DATASETS_CACHE).startswith(real)
    assert not os.environ["HF_HOME"].startswith(real)
    assert tqdm.tqdm(range(1)).disable
    assert huggingface_hub.utils.are_progress_bars_disabled() and datasets.utils.are_progress_bars_disabled()
    # and a process the test starts inherits the same environment
    code = "import huggingface_hub, tqdm; print(huggingface_hub.get_token(), tqdm.tqdm(range(1)).disable)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.stdout.split() == ["None", "True"], child.stderr
'''


def test_a_logged_in_shell_reaches_no_test(tmp_path):
    real = tmp_path / "real-home"
    hf_home = real / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    for path in (hf_home / "token", real / "token-file"):
        path.write_text("hf_from_a_token_file_0123456789\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TQDM_"))}
    env.update(HOME=str(real), HF_HOME=str(hf_home), HF_TOKEN_PATH=str(real / "token-file"),
               HF_TOKEN="hf_from_HF_TOKEN_0123456789", HUGGING_FACE_HUB_TOKEN="hf_from_HUGGING_FACE_HUB_TOKEN_0123",
               HF_OIDC_ID_TOKEN="an-oidc-id-token", SEAL_TEST_REAL_HOME=str(real),
               SEAL_TEST_MARK="set before the session", PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    (tmp_path / "test_inner.py").write_text(INNER)
    # -p conftest: this suite's conftest.py as a plugin of a session rooted in tmp_path (no config, no other conftest)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                           "test_inner.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout

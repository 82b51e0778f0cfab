"""LoopbackHub against the REAL huggingface_hub / datasets clients, plus raw-HTTP checks of its contract.

The clients run in a SUBPROCESS: huggingface_hub reads HF_ENDPOINT (and datasets its own copy of it) at import
time, and this test process may already have imported both with other settings. Patching
`huggingface_hub.constants.ENDPOINT` / `datasets.config.HF_ENDPOINT` in-process would also work for some
calls, but several modules bind the endpoint at import (`HUGGINGFACE_CO_URL_TEMPLATE`, default arguments), so
the only faithful way to test "what a user's process does with HF_ENDPOINT set" is a fresh interpreter.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap

import pytest
from hubfixtures import client_env

from fixtures.hub_server import LoopbackHub

_MARK = "@@CLIENT-RESULT@@"

_PRELUDE = """
import json, os, pathlib, sys
result = {}
README = '''---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
license: cc-by-sa-3.0
---
# ScoreMix synthetic identities (loopback test)
'''
def write_shard(path, labels):
    import datasets
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"label": labels, "seed": [1000 + x for x in labels]}).to_parquet(str(path))
def read_labels(path):
    import pyarrow.parquet as pq
    return pq.read_table(path).column("label").to_pylist()
"""


@pytest.fixture
def hub_options():
    """The ``hub`` fixture (conftest) with page_size=2: the clients go through the `Link: rel="next"` pagination of
    tree and commit listings."""
    return {"page_size": 2}


@pytest.fixture
def client(hub, tmp_path):
    """Run a snippet in a fresh interpreter configured for `hub`; the snippet fills the dict `result`."""

    def run(code: str, token: str | None = None, timeout: float = 120) -> dict:
        env = client_env(hub, tmp_path / "hf_home", token=token)
        script = _PRELUDE + textwrap.dedent(code) + f"\nprint({_MARK!r} + json.dumps(result, default=str))\n"
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
        if proc.returncode != 0 or not lines:
            pytest.fail(f"client snippet failed (rc={proc.returncode})\n--- stdout\n{proc.stdout[-4000:]}"
                        f"\n--- stderr\n{proc.stderr[-6000:]}")
        return json.loads(lines[-1][len(_MARK):])

    return run


def _statuses(hub: LoopbackHub, method: str, path_regex: str) -> list:
    return [r.status for r in hub.requests_matching(method, path_regex)]


def test_publish_tag_versions_and_load_them_back(hub, client):
    out = client("""
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError
        import datasets

        api, repo = HfApi(), "scoremix/faces"
        result["url"] = str(api.create_repo(repo, repo_type="dataset"))
        try:
            api.create_repo(repo, repo_type="dataset")
        except HfHubHTTPError as e:
            result["create_again"] = e.response.status_code
        api.create_repo(repo, repo_type="dataset", exist_ok=True)

        folder = pathlib.Path("export")
        write_shard(folder / "data" / "train-00000-of-00001.parquet", [0, 1, 2])
        (folder / "README.md").write_text(README)
        v1 = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset", commit_message="v1")
        api.create_tag(repo, tag="v1", revision=v1.oid, repo_type="dataset")
        result["v1"] = v1.oid

        same = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset", commit_message="again")
        result["same"] = same.oid

        write_shard(folder / "data" / "train-00000-of-00001.parquet", [3, 4])
        write_shard(folder / "data" / "train-00001-of-00001.parquet", [5])
        v2 = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset", commit_message="v2")
        api.create_tag(repo, tag="v2", revision=v2.oid, repo_type="dataset", tag_message="second build")
        result["v2"] = v2.oid

        refs = api.list_repo_refs(repo, repo_type="dataset")
        result["branches"] = {r.name: r.target_commit for r in refs.branches}
        result["tags"] = {r.name: r.target_commit for r in refs.tags}
        result["titles"] = [c.title for c in api.list_repo_commits(repo, repo_type="dataset")]
        result["tree_v2"] = sorted(f.path for f in api.list_repo_tree(repo, repo_type="dataset", revision="v2",
                                                                      recursive=True))
        for rev in ("v1", "v2"):
            path = hf_hub_download(repo, "data/train-00000-of-00001.parquet", repo_type="dataset", revision=rev)
            result[f"download_{rev}"] = read_labels(path)
            result[f"load_{rev}"] = sorted(datasets.load_dataset(repo, revision=rev, split="train")["label"])
            stream = datasets.load_dataset(repo, revision=rev, split="train", streaming=True)
            result[f"stream_{rev}"] = sorted(row["label"] for row in stream)
        result["load_main"] = sorted(datasets.load_dataset(repo, split="train")["label"])

        (folder / "README.md").write_text(README + "Proposed: a longer description.\\n")
        pr = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset",
                               commit_message="Propose a card change", create_pr=True)
        result["pr"] = [pr.pr_revision, pr.pr_num, pr.oid]
        refs = api.list_repo_refs(repo, repo_type="dataset", include_pull_requests=True)
        result["pulls"] = {r.name: r.target_commit for r in refs.pull_requests}
        result["main_after_pr"] = api.dataset_info(repo).sha
        card = hf_hub_download(repo, "README.md", repo_type="dataset", revision=pr.pr_revision)
        result["pr_card"] = pathlib.Path(card).read_text()
    """)
    repo = "scoremix/faces"
    assert out["url"].endswith("/datasets/scoremix/faces")
    assert out["create_again"] == 409

    # Identical content pushed again (huggingface_hub 2.4, Xet disabled): upload_folder makes NO commit. It still
    # calls validate-yaml, preupload (whose remote oids match the local ones) and the LFS batch endpoint (which
    # answers "already present", so nothing is PUT), logs "No files have been modified since last commit. Skipping
    # to prevent empty commit." and returns a CommitInfo whose oid is the branch head, i.e. the v1 commit.
    assert out["same"] == out["v1"]
    assert out["titles"] == ["v2", "v1", "initial commit"]
    assert [c.title for c in hub.commits(repo)] == ["v2", "v1", "initial commit"]

    assert out["tags"] == {"v1": out["v1"], "v2": out["v2"]}
    assert out["branches"] == {"main": out["v2"]}
    assert out["tree_v2"] == [".gitattributes", "README.md", "data", "data/train-00000-of-00001.parquet",
                              "data/train-00001-of-00001.parquet"]
    assert hub.refs(repo)["tags"] == {"v1": out["v1"], "v2": out["v2"]}
    assert sorted(hub.files(repo, "v1")) == [".gitattributes", "README.md", "data/train-00000-of-00001.parquet"]

    assert out["download_v1"] == [0, 1, 2] and out["download_v2"] == [3, 4]
    assert out["load_v1"] == out["stream_v1"] == [0, 1, 2]
    assert out["load_v2"] == out["stream_v2"] == out["load_main"] == [3, 4, 5]

    pr_revision, pr_num, pr_oid = out["pr"]
    assert (pr_revision, pr_num) == ("refs/pr/1", 1)
    assert out["pulls"] == {"refs/pr/1": pr_oid}
    assert out["main_after_pr"] == out["v2"]  # a PR does not move main
    assert "Proposed: a longer description." in out["pr_card"]
    assert hub.commits(repo, revision="refs/pr/1")[1].sha == out["v2"]  # the PR branches off main's head

    # Parquet shards went through LFS (batch + PUT), the README as a regular file; only 2 uploads of new content
    # (v1 shard 0, v2 shards 0 and 1 = 3 PUTs), none for the identical re-upload or for the PR (README only).
    assert _statuses(hub, "PUT", r"^/_lfs/upload/") == [200, 200, 200]
    assert _statuses(hub, "POST", r"/commit/main") == [200, 200, 200]  # v1, v2, PR (create_pr=1)
    assert all(r.status is not None and r.status < 500 for r in hub.requests)
    # datasets' streaming mode reads parquet through HfFileSystem with Range requests.
    assert 206 in _statuses(hub, "GET", r"/resolve/.*\.parquet$")


def test_failures_are_retried_or_resumed(hub, client):
    hub.fail_next("PUT", r"^/_lfs/upload/", status="drop")  # connection lost mid-upload: the client retries (1 s)
    hub.fail_next("POST", r"^/api/datasets/scoremix/flaky/commit/main", status=500)  # not retried: upload fails
    hub.fail_next("GET", r"/resolve/[^/]+/data/.*\.parquet$", status="truncate")  # download resumes with a Range
    out = client("""
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError

        api, repo = HfApi(), "scoremix/flaky"
        api.create_repo(repo, repo_type="dataset")
        folder = pathlib.Path("export")
        (folder / "README.md").parent.mkdir(parents=True, exist_ok=True)
        (folder / "README.md").write_text(README)
        write_shard(folder / "data" / "train-00000-of-00001.parquet", list(range(2000)))
        try:
            api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset", commit_message="first try")
        except HfHubHTTPError as e:
            result["first_try"] = [type(e).__name__, e.response.status_code]
        info = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset", commit_message="re-run")
        result["oid"] = info.oid
        path = hf_hub_download(repo, "data/train-00000-of-00001.parquet", repo_type="dataset", revision=info.oid)
        result["labels_ok"] = read_labels(path) == list(range(2000))
        result["local_size"] = (folder / "data" / "train-00000-of-00001.parquet").stat().st_size
    """)
    repo = "scoremix/flaky"
    assert out["first_try"] == ["HfHubHTTPError", 500]
    assert [c.title for c in hub.commits(repo)] == ["re-run", "initial commit"]
    assert hub.commits(repo)[0].sha == out["oid"]
    # The dropped PUT was retried once; the re-run found the object already uploaded and PUT nothing.
    assert _statuses(hub, "PUT", r"^/_lfs/upload/") == [None, 200]
    assert _statuses(hub, "POST", r"/commit/main") == [500, 200]
    # The truncated download was retried and the bytes are intact. (hf_hub_download writes what it receives in
    # 10 MiB chunks, so for a file this small the retry starts from byte 0: a 200, not a 206 Range resume.)
    downloads = _statuses(hub, "GET", r"/resolve/.*\.parquet$")
    assert len(downloads) == 2 and downloads[0] == 200 and downloads[1] in (200, 206)
    assert out["labels_ok"]
    assert len(hub.files(repo)["data/train-00000-of-00001.parquet"]) == out["local_size"]
    assert hub.pending_faults() == 0


def test_auth_and_error_mapping(hub, client):
    hub.add_token("hf_other_reader", write=False)
    out = client("""
        from huggingface_hub import HfApi, CommitOperationAdd, hf_hub_download
        from huggingface_hub import errors
        import datasets

        def status_of(fn):
            try:
                fn()
            except errors.HfHubHTTPError as e:
                return [type(e).__name__, e.response.status_code, e.response.headers.get("X-Error-Code")]
            return "no error"

        repo = "scoremix/guarded"
        api = HfApi()
        api.create_repo(repo, repo_type="dataset")
        first = api.upload_file(path_or_fileobj=README.encode(), path_in_repo="README.md", repo_id=repo,
                                repo_type="dataset")
        bogus, reader = HfApi(token="hf_not_a_real_token"), HfApi(token="hf_other_reader")
        result["bogus_create"] = status_of(lambda: bogus.create_repo("scoremix/x", repo_type="dataset"))
        result["bogus_whoami"] = status_of(lambda: bogus.whoami())
        result["reader_whoami"] = reader.whoami()["auth"]["accessToken"]["role"]
        result["reader_upload"] = status_of(lambda: reader.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, repo_type="dataset"))
        result["reader_tag"] = status_of(lambda: reader.create_tag(repo, tag="t", repo_type="dataset"))
        result["reader_can_read"] = reader.dataset_info(repo).sha == first.oid
        result["missing_repo"] = status_of(lambda: api.dataset_info("scoremix/nope"))
        result["missing_rev"] = status_of(lambda: api.dataset_info(repo, revision="v9"))
        result["missing_file"] = status_of(lambda: hf_hub_download(repo, "nope.txt", repo_type="dataset"))
        api.create_tag(repo, tag="v1", repo_type="dataset")
        result["tag_again"] = status_of(lambda: api.create_tag(repo, tag="v1", repo_type="dataset"))
        api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id=repo, repo_type="dataset")
        result["stale_parent"] = status_of(lambda: api.create_commit(
            repo, repo_type="dataset", commit_message="stale", parent_commit=first.oid,
            operations=[CommitOperationAdd(path_in_repo="z.txt", path_or_fileobj=b"z")]))
        try:
            datasets.load_dataset(repo, revision="v9")
        except Exception as e:
            result["load_missing_rev"] = type(e).__name__
    """)
    assert out["bogus_create"][:2] == ["HfHubHTTPError", 401]
    assert out["bogus_whoami"][:2] == ["HfHubHTTPError", 401]
    assert out["reader_whoami"] == "read"
    assert out["reader_upload"][:2] == ["HfHubHTTPError", 403]
    assert out["reader_tag"][:2] == ["HfHubHTTPError", 403]
    assert out["reader_can_read"] is True
    assert out["missing_repo"] == ["RepositoryNotFoundError", 404, "RepoNotFound"]
    assert out["missing_rev"] == ["RevisionNotFoundError", 404, "RevisionNotFound"]
    assert out["missing_file"] == ["RemoteEntryNotFoundError", 404, "EntryNotFound"]
    assert out["tag_again"][1] == 409
    assert out["stale_parent"][1] == 412
    assert out["load_missing_rev"] == "DatasetNotFoundError"
    assert hub.refs("scoremix/guarded")["tags"]["v1"] == hub.commits("scoremix/guarded")[1].sha  # tag did not move


# ---------------------------------------------------------------------- raw HTTP, no client library


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_raw_http_contract():
    with LoopbackHub(page_size=2) as hub:
        sha = hub.seed("org/raw", {"a.txt": b"0123456789", "dir/b.bin": b"\x00\x01binary", "dir/c.txt": b"c",
                                   "dir/sub/d.txt": b"d"})
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
        auth = {"Authorization": f"Bearer {hub.WRITE_TOKEN}"}

        # Bodies are drained even when the request is refused, so the keep-alive connection stays usable.
        status, _, _ = _request(conn, "POST", "/api/datasets/org/raw/commit/main", b"x" * 5000)
        assert status == 401
        assert _request(conn, "POST", "/api/nowhere", b"y" * 70000)[0] == 404
        conn.putrequest("POST", "/api/validate-yaml")  # a chunked body, by hand
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        payload = json.dumps({"content": "---\nlicense: mit\n", "repoType": "dataset"}).encode()
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
        resp = conn.getresponse()
        assert resp.status == 400 and json.loads(resp.read())["errors"]  # unclosed YAML front matter
        status, _, body = _request(conn, "GET", "/api/whoami-v2", headers=auth)
        assert status == 200 and json.loads(body)["name"] == hub.user

        # resolve: headers, LFS headers, ranges.
        status, h, body = _request(conn, "HEAD", "/datasets/org/raw/resolve/main/a.txt")
        assert (status, body) == (200, b"") and h["x-repo-commit"] == sha and h["content-length"] == "10"
        assert "x-linked-etag" not in h and h["etag"].strip('"') == hub.store.get_repo("dataset", "org/raw") \
            .commits[sha].files["a.txt"].oid
        status, h, body = _request(conn, "HEAD", "/datasets/org/raw/resolve/main/dir/b.bin")
        assert h["x-linked-size"] == "8" and len(h["x-linked-etag"].strip('"')) == 64  # binary -> LFS
        assert _request(conn, "GET", "/datasets/org/raw/resolve/main/a.txt", headers={"Range": "bytes=2-5"})[::2] \
            == (206, b"2345")
        assert _request(conn, "GET", "/datasets/org/raw/resolve/main/a.txt", headers={"Range": "bytes=-3"})[2] \
            == b"789"
        status, h, _ = _request(conn, "GET", "/datasets/org/raw/resolve/main/a.txt", headers={"Range": "bytes=10-"})
        assert status == 416 and h["content-range"] == "bytes */10"

        # 404s say what is missing.
        for path, code in [("/api/datasets/org/none", "RepoNotFound"),
                           ("/api/datasets/org/raw/revision/nope", "RevisionNotFound"),
                           ("/datasets/org/raw/resolve/main/none.txt", "EntryNotFound"),
                           ("/api/datasets/org/raw/tree/main/none", "EntryNotFound")]:
            status, h, _ = _request(conn, "GET", path)
            assert (status, h.get("x-error-code")) == (404, code), path

        # Tree pagination follows the Link header; recursive listings include folders.
        paths, url = [], "/api/datasets/org/raw/tree/main?recursive=true"
        while url:
            status, h, body = _request(conn, "GET", url)
            paths += [e["path"] for e in json.loads(body)]
            url = h.get("link", "").partition("<")[2].partition(">")[0].replace(hub.endpoint, "")
        assert paths == ["dir", "dir/sub", ".gitattributes", "a.txt", "dir/b.bin", "dir/c.txt", "dir/sub/d.txt"]
        status, _, body = _request(conn, "GET", "/api/datasets/org/raw/tree/main/dir")
        assert [e["path"] for e in json.loads(body)] == ["dir/sub", "dir/b.bin"]  # page 1 of 2

        # Tags never move; refs/pr/N is addressable with a quoted or a bare ref.
        assert _request(conn, "POST", f"/api/datasets/org/raw/tag/{sha}", json.dumps({"tag": "v1"}).encode(),
                        {**auth, "Content-Type": "application/json"})[0] == 200
        hub.seed("org/raw", {"a.txt": b"changed"})
        assert _request(conn, "POST", "/api/datasets/org/raw/tag/main", json.dumps({"tag": "v1"}).encode(),
                        {**auth, "Content-Type": "application/json"})[0] == 409
        assert hub.refs("org/raw")["tags"] == {"v1": sha}
        ndjson = b'{"key": "header", "value": {"summary": "pr"}}\n{"key": "deletedFile", "value": {"path": "a.txt"}}\n'
        status, _, body = _request(conn, "POST", "/api/datasets/org/raw/commit/main?create_pr=1", ndjson, auth)
        assert status == 200 and json.loads(body)["pullRequestUrl"].endswith("/discussions/1")
        for rev in ("refs%2Fpr%2F1", "refs/pr/1"):
            assert _request(conn, "GET", f"/datasets/org/raw/resolve/{rev}/a.txt")[0] == 404
        assert hub.files("org/raw")["a.txt"] == b"changed"

        # Fault injection: a dropped connection, then a normal answer.
        hub.fail_next("GET", r"^/api/whoami-v2$", status="drop")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _request(conn, "GET", "/api/whoami-v2", headers=auth)
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
        assert _request(conn, "GET", "/api/whoami-v2", headers=auth)[0] == 200
        conn.close()

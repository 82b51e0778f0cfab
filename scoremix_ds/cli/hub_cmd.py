"""``scoremix-ds push`` and ``scoremix-ds versions``: publish a build, a trained model or a trained generator folder
to the Hub (the folder's files say which: :mod:`~scoremix_ds.hub.folder_kind`), list a dataset's versions."""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

# Hub options, declared once here (``build --push-to`` reuses them).
RepoOpt = Annotated[str, typer.Option("--repo", help="Hub repository, ORG/NAME (created if missing): a dataset repository for a build, a model repository for a trained model or generator.")]
TagOpt = Annotated[Optional[str], typer.Option("--tag", help="Version tag put on the pushed commit, e.g. v1.0.0.")]
ForceTagOpt = Annotated[bool, typer.Option("--force-tag", help="Move --tag if it already exists (never done otherwise).")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="Hub token (default: HF_TOKEN, then `hf auth login`).", show_default=False)]


def push(
    folder: Annotated[str, typer.Argument(help="A finished `scoremix-ds build`, `train` or `train-generator` output folder.", show_default=False)],
    repo: RepoOpt,
    tag: TagOpt = None,
    force_tag: ForceTagOpt = False,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Branch to push to (created from main if missing).")] = None,
    create_pr: Annotated[bool, typer.Option("--create-pr", help="Open a pull request against main instead of committing.")] = False,
    private: Annotated[bool, typer.Option("--private", help="Create the repository private (an existing one is unchanged).")] = False,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message", help="Commit title.")] = None,
    token: TokenOpt = None,
) -> None:
    """Push a build (dataset repository), a trained model or a trained generator (model repository) to the Hub and
    tag the exact commit pushed."""
    from ..hub.folder_kind import folder_kind

    _quiet_http()
    kind = folder_kind(folder)
    if kind == "dataset":
        from ..hub.push import PushConfig, push_dataset

        config = PushConfig(folder=folder, repo_id=repo, tag=tag, force_tag=force_tag, revision=revision,
                            create_pr=create_pr, private=private, commit_message=commit_message, token=token)
        typer.echo(summary(push_dataset(config), config))
        return
    from ..hub.push_model import ModelPushConfig

    config = ModelPushConfig(folder=folder, repo_id=repo, tag=tag, force_tag=force_tag, revision=revision,
                             create_pr=create_pr, private=private, commit_message=commit_message, token=token)
    if kind == "generator":
        from ..generators.loading import load_generator
        from ..hub.push_generator import push_generator

        result = push_generator(config, load=load_generator)
        load = "DiffusionPipeline.from_pretrained"
    else:
        from ..discriminators.loading import load_discriminator
        from ..hub.push_model import push_model

        result = push_model(config, load=load_discriminator)
        load = "scoremix-ds eval / build --discriminator"
    typer.echo(model_summary(result, config, kind, load))


def _quiet_http() -> None:
    """huggingface_hub 2.x logs every request through httpx2 at INFO; keep the CLI's output to what matters."""
    logging.getLogger("httpx2").setLevel(logging.WARNING)


def summary(result, config) -> str:
    """One line describing a :class:`~scoremix_ds.hub.push.PushResult` of ``config``."""
    sha = result.commit_sha[:8]
    pinned = result.tag or (config.revision if config.revision not in (None, "main") else None)
    load = f"datasets.load_dataset({result.repo_id!r}, 'mix'" + (f", revision={pinned!r})" if pinned else ")")
    if config.create_pr:
        if result.pr_url:
            return f"opened {result.pr_url} with commit {sha} for {result.repo_id}"
        return f"nothing to propose: {result.repo_id} already holds this dataset at commit {sha}"
    tagged = f", tagged {result.tag}" if result.tag else ""
    if not result.created_commit:
        return f"{result.repo_id} already holds this dataset at commit {sha}; no new commit{tagged} — load it with: {load}"
    return f"pushed to {result.url} as commit {sha}{tagged} — load it with: {load}"


def model_summary(result, config, kind: str, load: str) -> str:
    """One line describing the push of a trained model or generator."""
    sha = result.commit_sha[:8]
    if config.create_pr:
        return (f"opened {result.pr_url} with commit {sha} for {result.repo_id}" if result.pr_url else
                f"nothing to propose: {result.repo_id} already holds this {kind} at commit {sha}")
    pinned = result.tag or (config.revision if config.revision not in (None, "main") else None)
    ref = f"{result.repo_id}@{pinned}" if pinned else result.repo_id
    tagged = f", tagged {result.tag}" if result.tag else ""
    done = f"pushed {kind} to {result.url} as commit {sha}" if result.created_commit else \
        f"{result.repo_id} already holds this {kind} at commit {sha}; no new commit"
    return f"{done}{tagged} — load it with {load} {ref}"


def versions(
    repo: Annotated[str, typer.Argument(help="Hub dataset repository, ORG/NAME.", show_default=False)],
    token: TokenOpt = None,
) -> None:
    """List the tagged versions of a Hub dataset with the build config of each."""
    from ..hub.versions import list_versions

    _quiet_http()
    found = list_versions(repo, token=token)
    if not found:
        typer.echo(f"{repo} has no tags yet; `scoremix-ds push DIR --repo {repo} --tag v1.0.0` creates one")
        return
    rows = [("tag", "commit", "date", "strategy", "generator", "rows", "fingerprint")]
    for v in found:
        counts = ", ".join(f"{name} {n}" for name, n in v.counts.items()) or "-"
        rows.append((v.tag, v.commit[:8], (v.date or "-")[:19], v.strategy or "-", v.generator or "-", counts,
                     v.fingerprint or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())

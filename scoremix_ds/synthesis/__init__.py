"""``scoremix-ds build``: turning a generator, a discriminator and real data into a synthetic-identity dataset.

- :mod:`.config` (the typed ``BuildConfig``; a recipe in ``builders/`` is a saved one) and :mod:`.recipe_file`
  (``build.toml``, written beside the card);
- :mod:`.resolve`: what a build settles once, before any model loads (plan file, a finished build in ``--out``);
- :mod:`.planning`: choosing the mixing plan, its parquet file, the ``plan`` report;
- :mod:`.centres_cache`: class centres embedded once per build and cached with it;
- :mod:`.layout` (who builds which units), :mod:`.launch` (``--num-processes``), :mod:`.units` (completion markers);
- :mod:`.runner` (the run), :mod:`.pipeline` (sampling overlapped with encoding and writing), :mod:`.rows` (the
  sampling of a list of images outside the pipeline), :mod:`.outdir` (new / resumable / complete / refused);
- :mod:`.finalize` (manifest, preview, card), :mod:`.merge` (job-array parts), :mod:`.status` (``status DIR``).

What a build writes (shards, manifest, card) is :mod:`scoremix_ds.dataset`; the recipes are the top-level
``builders/`` folder.
"""

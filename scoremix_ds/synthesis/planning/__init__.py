"""The mixing plan of a build.

- :mod:`.mix_plan`: ``MixPlan`` / ``Identity`` values (parents, weights, distances) and the per-image seeds;
- :mod:`.choose`: choosing the plan from the generator, the discriminator's class centres and the strategy;
- :mod:`.parquet_file`: the plan as a parquet file (``build --plan``), with the digests that tie it to its models;
- :mod:`.report`: the ``plan`` command's summary and distance histogram.
"""

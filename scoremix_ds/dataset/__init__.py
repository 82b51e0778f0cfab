"""The dataset a build writes: row schema, parquet shards, manifest, integrity checks, preview grid and card."""

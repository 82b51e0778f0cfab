"""The dataset on disk: row schema, parquet shards, manifest, preview grid and card."""

"""The mixing plan: choosing it from the models and real data, its parquet file, and the ``plan`` report."""

"""Test helpers for scoremix-ds, not the product path.

Nothing under ``scoremix_ds.testing`` is imported by the package itself. It holds tools that let the test
suite (and anyone reproducing a bug report) exercise real code against stand-ins for outside services, for
example :class:`scoremix_ds.testing.hub_server.LoopbackHub`, a loopback server that speaks enough of the
Hugging Face Hub HTTP API for the real ``huggingface_hub`` and ``datasets`` clients to push and load datasets
without network.
"""

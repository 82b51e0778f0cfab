"""The rules every layer shares, and nothing above them: errors, recipes and fingerprints, references and their
public (card) form, the Hub client and its error mapping, processes and devices, output claiming, plots' canvas.

Nothing here imports from another scoremix_ds subpackage (``tests/test_layers.py`` checks it)."""

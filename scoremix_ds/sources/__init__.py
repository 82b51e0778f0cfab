"""Real (and synthetic) input data: read it, label it, and draw training batches from it.

- :mod:`.openers`: :func:`~.openers.open_source`, the one way every command opens a data reference (a built-in name,
  a folder of any supported kind, a Hub id; ``[classes]`` and ``@REVISION``), and :func:`~.openers.read_real_data`,
  which loads one into memory; :mod:`.sources` holds the source types and decoding they share;
- :mod:`.readers` (the built-in data sets, :data:`~.readers.READERS`) and :mod:`.glyphs` (``glyphs-han``);
  :mod:`.recordio` (insightface ``train.rec`` without mxnet); :mod:`.refs` and :mod:`.subsets` (the reference
  grammar); :mod:`.splits` (held-out parts);
- :mod:`.mixture` and :mod:`.batching`: real + synthetic sources as one training set and its batch sampler;
- :mod:`.preprocess` and :mod:`.transforms`: pure image transforms.

The datasets a build WRITES are :mod:`scoremix_ds.dataset`.
"""

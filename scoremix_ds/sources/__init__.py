"""Real (and synthetic) input data: every data reference opened one way, read and labelled.

- :mod:`.openers`: :func:`~.openers.open_source`, the one way every command opens a data reference (a built-in name,
  a folder of any supported kind, a Hub id; ``[classes]`` and ``@REVISION``), and :func:`~.openers.read_real_data`,
  which loads one into memory; :mod:`.source` holds the source types and decoding they share;
- :mod:`.readers` (the built-in data sets, :data:`~.readers.READERS`), :mod:`.glyphs` (``glyphs-han``) and
  :mod:`.real_data` (:class:`~.real_data.RealData`, labelled images in memory);
  :mod:`.recordio` (insightface ``train.rec`` without mxnet); :mod:`.subsets` (the ``[classes]`` part of the
  reference grammar, whose rest is :mod:`scoremix_ds.core.refs`); :mod:`.splits` (held-out parts);
- :mod:`.preprocess`: the training-time image preprocessing (over :mod:`scoremix_ds.maths.image_tensors`).

The datasets a build WRITES are :mod:`scoremix_ds.dataset`; the trainer's batches are :mod:`scoremix_ds.training`.
"""

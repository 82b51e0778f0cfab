"""Analyses of models and built datasets, each a thin IO layer over pure maths:

- :mod:`.align` (``scoremix-ds align``): alignment of the generator's condition space and a discriminator's class
  centres (or two discriminators'), over :mod:`scoremix_ds.maths.alignment`;
- :mod:`.audit_run` (``scoremix-ds audit``): the identity-leakage audit of a finished build, over the maths of
  :mod:`.audit`;
- :mod:`.plots`: the small PNG figures they write.
"""

"""Class-conditional diffusion generators: loading a diffusers folder or Hub id behind one interface
(:mod:`.loading`) and the architectures ``train-generator`` builds (:mod:`.architectures`).
EDM2 (network, preconditioner, presets, Heun sampler, code-free snapshot reader) is in :mod:`.edm2`."""

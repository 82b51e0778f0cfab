"""Class-conditional diffusion generators: loading a diffusers folder or Hub id behind one interface
(:mod:`.loading`) and the architectures ``train-generator`` builds (:mod:`.architectures`)."""

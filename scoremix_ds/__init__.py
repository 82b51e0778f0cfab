"""scoremix-ds: build, version and share ScoreMix synthetic-identity datasets.

ScoreMix (Rahimi & Marcel, arXiv 2506.10226) mixes the class-conditioned scores of two identities at every
reverse diffusion step; the pairs are chosen far apart in a recognition network's embedding space.
"""

__version__ = "0.1.0"

"""The probes layer's click commands, mounted by the `featcodec` root (bench.cli).

    encoders.py  featcodec encoders, extract         (probes.encoders)
    coding.py    featcodec train-codec, encode        (feature caches / images → codec.*)
    necks.py     featcodec train-neck, eval           (probes.training, probes.evaluate)

Each module imports only click and the standard library at import time; the libraries a command runs
are imported inside it, so `featcodec CMD --help` answers without torch.
"""

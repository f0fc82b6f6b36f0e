"""Pretraining recipes for the shipped mini encoders: `mini-hiera` (MAE) and `mini-sam2` (SAM-style).

See `recipe.py` (the whole recipe), `commands.py` (`featcodec pretrain-mini`) and docs/model_card.md.
"""

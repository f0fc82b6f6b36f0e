"""Seeded batching (codec/batching.py): batches as a function of (seed, step),
item-wise or read block by block."""

from codec.batching import batch_indices


def test_a_buffered_epoch_reads_whole_blocks_a_window_at_a_time():
    n, block, window, b = 48, 8, 2, 4  # 6 blocks
    order = [i for step in range(24) for i in batch_indices(step, b, n, seed=3, block=block, window=window)]
    for epoch in (order[:n], order[n:]):
        assert sorted(epoch) == list(range(n))  # every item once per epoch
        for start in range(0, n, block * window):  # a shuffle buffer of `window` whole blocks at a time
            assert len({i // block for i in epoch[start : start + block * window]}) <= window
    assert order[:n] != order[n:] and order[:n] != sorted(order[:n])  # shuffled, differently each epoch
    assert (
        batch_indices(11, b, n, seed=3, block=block, window=window) == order[44:48]
    )  # a function of the step
    assert batch_indices(0, b, n, seed=4, block=block, window=window) != order[:4]
    short = [i for step in range(10) for i in batch_indices(step, 5, 50, seed=3, block=block, window=window)]
    assert sorted(short) == list(range(50))  # a last, shorter block (a shard of skipped images) included

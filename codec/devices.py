"""Device selection shared by every command that runs a model (`--device cpu|cuda|cuda:N|auto`), and the
threads that may work beside a device's model (`default_workers`, `InlineExecutor`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np
import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without a device is an error, not a silent CPU run."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available (use --device cpu or auto)")
    return device


def default_workers(device: torch.device) -> int:
    """Threads that run files beside the caller (`featcodec encode DIR` / `decode DIR`): the CPUs this process
    may use for an accelerator; none for a CPU model. On a CPU, torch ops on a second thread run slower while
    the first thread's OpenMP team exists (a 192-channel 3×3 convolution at 16×16 on 2 cores: 0.51–0.54 ms
    in the main thread, 0.82–1.07 ms on a pool thread, 0.52 ms on a pool thread when the main thread never ran
    torch): OpenMP keeps a team of threads per thread that runs parallel regions, and two teams oversubscribe
    the cores. Measured whole (bench/RESULTS.md, "Whole directories"): a pool lost 3–54 % against running
    each file in the caller's thread."""
    from .entropy.native import default_threads  # here: the entropy package loads compressai

    return default_threads() if device.type != "cpu" else 0


def worker_pool(workers: int, name: str) -> Executor:
    """A thread pool of `workers` threads, or, for 0, `InlineExecutor` (each call run at once)."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name) if workers else InlineExecutor()


class InlineExecutor(Executor):
    """An executor that runs each call at once in the caller's thread: a pool's schedule without threads."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # delivered by .result(), as a pool's future would
            future.set_exception(e)
        return future


def to_host(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors as host numpy arrays, with one synchronisation for all of them.

    From a GPU, every tensor is copied asynchronously into pinned memory and the stream is synchronised once
    (instead of one blocking copy, and one synchronisation, per tensor). The arrays keep their dtypes: sending
    int16 symbols and uint8 scale indexes and widening them on the host was measured slower on an H200 for a
    SAM2 1024 px latent (bench/RESULTS.md, issue 21). CPU tensors are returned as views, uncopied."""
    if all(t.device.type == "cpu" for t in tensors.values()):
        return {k: t.detach().numpy() for k, t in tensors.items()}
    staged = {}
    for name, t in tensors.items():
        t = t.detach()
        staged[name] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
    torch.cuda.current_stream(next(iter(tensors.values())).device).synchronize()
    return {name: buf.numpy() for name, buf in staged.items()}


class CudaGraphs:
    """`fn` (a dict of tensors → a dict of tensors, free of host synchronisation) replayed from CUDA graphs,
    one captured per input signature (names, shapes, dtypes, device).

    A codec encode on a GPU is bound by the host: ~200 kernel launches whose kernels take 0.9 ms in all for a
    1024 px SAM2 image on an H200 (bench/RESULTS.md, issue 21). One graph replay launches them all at once.
    torch.cuda.graphs is the tool; what this class adds is the per-signature cache, the static inputs, a lock
    (the directory encoder calls compress from several threads) and a fallback: a capture that fails (an
    operation that synchronises, a kernel that is not capturable) is logged once and that signature runs
    eagerly from then on. `FEATCODEC_CUDA_GRAPHS=0` turns capture off.

    The returned tensors are the graph's static outputs: valid until the next call with the same signature,
    so a caller copies them out (to_host) while holding `lock`.
    """

    def __init__(self, fn, tensors=None, max_graphs: int = 4):
        """tensors: a callable giving the tensors `fn` reads besides its inputs (a model's parameters and
        buffers); their addresses are part of a graph's key, since a graph replays on the addresses it was
        captured with (a model moved, reloaded or updated gets a new capture, not stale pointers)."""
        self.fn, self.tensors, self.max_graphs = fn, tensors, int(max_graphs)
        self.lock = threading.RLock()
        self._graphs: dict = {}
        self._failed: set = set()

    @staticmethod
    def enabled(device: torch.device) -> bool:
        return device.type == "cuda" and os.environ.get("FEATCODEC_CUDA_GRAPHS", "1") != "0"

    def clear(self) -> None:
        """Forget the graphs (their captured pointers): after the model's tensors were replaced."""
        with self.lock:
            self._graphs.clear()
            self._failed.clear()

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = next(iter(inputs.values())).device
        if not self.enabled(device):
            return self.fn(inputs)
        key = tuple((k, tuple(v.shape), v.dtype, str(v.device)) for k, v in inputs.items())
        if self.tensors is not None:
            key += tuple(t.data_ptr() for t in self.tensors())
        with self.lock:
            entry = self._graphs.get(key)
            if entry is None:
                if key in self._failed:
                    return self.fn(inputs)
                try:
                    entry = self._capture(inputs)
                except Exception as e:  # noqa: BLE001 - any capture failure: run eagerly, say why once
                    logging.getLogger(__name__).warning(
                        "CUDA graph capture failed for %s (%s: %s); running it eagerly",
                        getattr(self.fn, "__qualname__", self.fn),
                        type(e).__name__,
                        e,
                    )
                    self._failed.add(key)
                    torch.cuda.synchronize(device)
                    return self.fn(inputs)
                if len(self._graphs) >= self.max_graphs:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[key] = entry
            static_in, graph, static_out = entry
            for name, t in inputs.items():
                static_in[name].copy_(t)
            graph.replay()
            return static_out

    def _capture(self, inputs: Mapping[str, torch.Tensor]):
        static_in = {k: v.detach().clone() for k, v in inputs.items()}
        side = torch.cuda.Stream(next(iter(static_in.values())).device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream: cuDNN/cuBLAS choose their algorithms here
            for _ in range(2):
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads' CUDA calls (the next batch's forward) do not break this capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.fn(static_in)
        return static_in, graph, static_out

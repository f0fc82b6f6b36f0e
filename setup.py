"""Builds featcodec's native quantisation ops (codec._C) from csrc/.

The CPU extension is always built; the CUDA kernels (csrc/*.cu) are added when nvcc and a
CUDA-enabled torch are present, unless FEATCODEC_NO_CUDA=1. If nothing can be compiled the
pure-torch reference ops in codec.ops are used at run time.

CUDA discovery needs no environment variables: CUDA_HOME/CUDA_PATH if set, else the toolkit
behind `nvcc` on PATH (following wrapper scripts such as /usr/local/bin/nvcc), else
/usr/local/cuda. The runtime library directory may be lib64 or lib (torch picks whichever exists).
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0+PTX" (A100, H100/H200, PTX for newer GPUs) to keep
build time down; set it to override.
"""

import glob
import os
import re
import shutil

from setuptools import setup


def _cuda_home_candidates():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            yield os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = os.path.realpath(nvcc)
        yield os.path.dirname(os.path.dirname(real))
        try:  # a wrapper script, e.g. `exec /usr/local/cuda-13.0/bin/nvcc "$@"`
            with open(real, errors="ignore") as f:
                head = f.read(4096)
            yield from re.findall(r"(/\S+)/bin/nvcc\b", head)
        except OSError:
            pass
    yield "/usr/local/cuda"


def _find_cuda_home():
    for home in _cuda_home_candidates():
        if os.path.isfile(os.path.join(home, "bin", "nvcc")) and os.path.isfile(
            os.path.join(home, "include", "cuda_runtime.h")
        ):
            return os.path.abspath(home)
    return None


def _extensions():
    cuda_home = None
    if os.environ.get("FEATCODEC_NO_CUDA", "0") != "1":
        cuda_home = _find_cuda_home()
        if cuda_home:
            # torch.utils.cpp_extension reads CUDA_HOME once, at import.
            os.environ["CUDA_HOME"] = cuda_home
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    except ImportError:  # metadata-only builds (e.g. sdist) do not need torch
        return [], {}
    cpp = sorted(glob.glob("csrc/*.cpp"))
    if not cpp:
        return [], {}
    cu = sorted(glob.glob("csrc/*.cu"))
    use_cuda = bool(cu) and cuda_home is not None and torch.version.cuda is not None
    extra = {"cxx": ["-O3", "-fopenmp"]}
    sources = cpp
    kind = CppExtension
    if use_cuda:
        extra["nvcc"] = ["-O3", "--expt-relaxed-constexpr"]
        sources = cpp + cu
        kind = CUDAExtension
    print(
        f"featcodec: building codec._C with {'CPU + CUDA (' + cuda_home + ')' if use_cuda else 'CPU'} kernels"
    )
    ext = kind("codec._C", sources, extra_compile_args=extra, extra_link_args=["-fopenmp"])
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)

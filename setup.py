"""Builds featcodec's native quantisation ops from csrc/.

The CPU extension is always built; the CUDA sources are added when nvcc and a
CUDA-enabled torch are present, unless FEATCODEC_NO_CUDA=1.  If nothing can be
compiled the pure-torch reference ops in codec.ops are used at run time.
"""

import glob
import os
import shutil

from setuptools import setup


def _extensions():
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    except ImportError:  # metadata-only builds (e.g. sdist) do not need torch
        return [], {}
    cpp = sorted(glob.glob("csrc/*.cpp"))
    if not cpp:
        return [], {}
    cu = sorted(glob.glob("csrc/*.cu"))
    extra = {"cxx": ["-O3", "-fopenmp"]}
    use_cuda = (
        bool(cu)
        and os.environ.get("FEATCODEC_NO_CUDA", "0") != "1"
        and torch.version.cuda is not None
        and (shutil.which("nvcc") or os.path.exists(os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")))
    )
    if use_cuda:
        extra["nvcc"] = ["-O3", "--use_fast_math"]
        ext = CUDAExtension("codec._C", cpp + cu, extra_compile_args=extra, extra_link_args=["-fopenmp"])
    else:
        ext = CppExtension("codec._C", cpp, extra_compile_args=extra, extra_link_args=["-fopenmp"])
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)

# Builds the extension with the project's own CMake build (the module needs
# the static library and the BPF skeletons), then lets setuptools install
# the package directory CMake assembled.
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class CMakeBuild(build_py):
    def run(self):
        # RETINA_PY_BUILD_DIR: an existing, configured build tree to reuse
        # (only _retina is built in it); otherwise a fresh one here.
        given = os.environ.get("RETINA_PY_BUILD_DIR")
        build = Path(given) if given else HERE / "build" / "cmake"
        if not (given and (build / "CMakeCache.txt").exists()):
            subprocess.check_call([
                "cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                "-DRETINA_BUILD_TESTS=OFF", "-DRETINA_BUILD_BENCH=OFF", "-DRETINA_BUILD_EXAMPLES=OFF",
                "-DRETINA_BUILD_PYTHON=ON", f"-DPython3_EXECUTABLE={sys.executable}",
            ])
        subprocess.check_call(["cmake", "--build", str(build), "--target", "_retina",
                               "-j", os.environ.get("RETINA_BUILD_JOBS", "2")])
        super().run()
        # The package as CMake assembled it: the .py files and _retina*.so.
        out = Path(self.build_lib) / "retina"
        out.mkdir(parents=True, exist_ok=True)
        for f in (build / "bindings" / "python" / "retina").iterdir():
            if f.suffix in (".py", ".so"):
                self.copy_file(str(f), str(out / f.name))


class BinaryDistribution(Distribution):
    # The package carries a compiled module: the wheel is platform-specific.
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": CMakeBuild}, distclass=BinaryDistribution)

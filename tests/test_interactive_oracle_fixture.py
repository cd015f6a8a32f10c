"""The DAVIS interactive framework (PyPI ``davisinteractive`` 1.0.4) as a test oracle.

The package cannot be installed as is on a current Python: its setup.py imports
numpy and Cython before pip can install them and it pins scikit-learn 0.20.3. So
the tests fetch its source distribution with pip (``--no-build-isolation`` with
the ``test`` extra's Cython, which runs its setup.py without compiling anything),
unpack it into pytest's cache, and import the pure-Python modules they need
(robot, metrics, evaluation service) from there, with shims applied to those
modules only:

- numpy aliases the package still uses (``np.float``, ``np.int``, ``np.bool``,
  ``np.trapz``), set on numpy only while its modules are imported and then given to
  them through a module proxy, so numpy itself stays untouched;
- ``nx.from_scipy_sparse_matrix`` (networkx < 3) -> ``from_scipy_sparse_array``;
- its absl-based logging module -> the standard logging;
- ``six.moves.urllib`` (only imported by its dataset module) when six is missing.

On this stack its robot is not the official one (scikit-image >= 0.19 breaks medial
axis ties with an unseeded generator; scikit-learn >= 0.24 and networkx 2.5-3.1 break
graph ties differently): the robot is compared with recordings of the challenges'
stack instead (fixtures/interactive/).

Its C extension (COCO mask encoding, used only by the remote connector) is never built.
"""
from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import tarfile
import types
import warnings
from pathlib import Path

import networkx
import numpy
import pytest

VERSION = "1.0.4"
PACKAGE = "davisinteractive"


class _NumpyWithAliases(types.ModuleType):
    def __init__(self):
        super().__init__("numpy")
        self.float, self.int, self.bool = float, int, bool
        self.trapz = getattr(numpy, "trapezoid", None) or getattr(numpy, "trapz")

    def __getattr__(self, name):
        return getattr(numpy, name)


class _NetworkxWithOldNames(types.ModuleType):
    def __init__(self):
        super().__init__("networkx")
        self.from_scipy_sparse_matrix = networkx.from_scipy_sparse_array

    def __getattr__(self, name):
        return getattr(networkx, name)


def fetch_source(cache_dir: Path) -> Path:
    """Unpacked source tree of davisinteractive (downloaded once into `cache_dir`)."""
    tree = cache_dir / f"{PACKAGE}-{VERSION}"
    if (tree / PACKAGE / "robot" / "interactive_robot.py").is_file():
        return tree
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps", "--no-build-isolation",
           "--no-binary", ":all:", "-d", str(cache_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    archive = cache_dir / f"{PACKAGE}-{VERSION}.tar.gz"
    if done.returncode != 0 or not archive.is_file():
        raise RuntimeError(f"could not fetch {PACKAGE} {VERSION} with pip (needs the test extra's Cython and "
                           f"network access to PyPI):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with tarfile.open(archive) as tar:
        tar.extractall(cache_dir, filter="data")
    return tree


def load(source_tree: Path | None) -> types.ModuleType:
    """Import the framework (installed, or from `source_tree`) with the shims; return the package."""
    if "davisinteractive.robot.interactive_robot" in sys.modules:
        return sys.modules[PACKAGE]
    if source_tree is not None and str(source_tree) not in sys.path:
        sys.path.insert(0, str(source_tree))
    pkg = importlib.import_module(PACKAGE)
    shim_log = types.ModuleType(f"{PACKAGE}.logging")
    logger = logging.getLogger(PACKAGE)
    shim_log.verbose = lambda msg, level=0: logger.debug(msg)
    for name in ("debug", "info", "warning", "error"):
        setattr(shim_log, name, getattr(logger, name))
    shim_log.warn = logger.warning
    sys.modules[shim_log.__name__] = shim_log
    pkg.logging = shim_log
    try:
        import six  # noqa: F401
    except ImportError:
        import urllib

        six = types.ModuleType("six")
        six.moves = types.ModuleType("six.moves")
        six.moves.urllib = urllib
        sys.modules["six"], sys.modules["six.moves"] = six, six.moves
    aliases = {"float": float, "int": int, "bool": bool}
    added = [n for n in aliases if n not in numpy.__dict__]
    for n in added:
        setattr(numpy, n, aliases[n])
    try:
        with warnings.catch_warnings():   # its docstrings hold invalid escape sequences
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            modules = [importlib.import_module(f"{PACKAGE}.{m}") for m in
                       ("robot.interactive_robot", "utils.operations", "metrics.jaccard", "evaluation.service")]
    finally:
        for n in added:
            delattr(numpy, n)
    proxy = _NumpyWithAliases()
    for module in modules:
        module.np = proxy
    modules[0].nx = _NetworkxWithOldNames()
    return pkg


def acquire(cache_dir: Path) -> types.ModuleType:
    try:
        importlib.import_module(PACKAGE)
        return load(None)
    except ImportError:
        pass
    return load(fetch_source(Path(os.environ.get("VOSBENCH_ORACLE_CACHE", cache_dir))))


@pytest.fixture(scope="module")
def oracle(request, tmp_path_factory) -> types.ModuleType:
    """The framework, shimmed; skipped when it cannot be fetched, failed instead when CI requires shared data."""
    try:
        cache = getattr(request.config, "cache", None)   # absent under -p no:cacheprovider
        return acquire(Path(cache.mkdir(PACKAGE)) if cache is not None else tmp_path_factory.mktemp(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - any failure to get the oracle is reported the same way
        message = f"the davisinteractive oracle is unavailable: {exc}"
        if os.environ.get("VOSBENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)

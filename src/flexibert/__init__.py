"""FlexiBERT: explore the design space of heterogeneous Transformer encoders.

The stages, in the one direction data flows: ``space`` -> ``model`` -> ``train`` -> ``search`` ->
``report``, then ``run`` and ``cli`` on top. Importing the package registers the model with the
``transformers`` Auto classes, lazily, when ``transformers`` defines them: torch loads only for
what uses it, so the command line and ``flexibert.space`` stay light.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys
import threading
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Sequence

# Before torch loads: libgomp reads this once. Spinning OpenMP threads stalled training when
# processes shared a 2-core machine; passive waiting was as fast alone. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from flexibert._common import FlexiBertError  # noqa: E402
from flexibert.space import DesignSpace, ModelCard  # noqa: E402

__all__ = ["DesignSpace", "FlexiBertError", "ModelCard"]
__version__ = "0.1.0"

#: The ``transformers`` modules that define the Auto factories (transformers 5 layout).
AUTO_MODULES = ("transformers.models.auto.configuration_auto", "transformers.models.auto.modeling_auto")
#: What registering imports: ``transformers`` and the two files that define the classes.
WATCHED = ("transformers", "flexibert.model.configuration_flexibert", "flexibert.model.modeling_flexibert")


class _Loader(importlib.abc.Loader):
    """Runs a watched module's own loader, then tells the hook its import is over.

    Every other attribute (``get_source``, ``get_resource_reader``, ...) is the wrapped loader's,
    so tracebacks, ``inspect`` and resources behave as without the hook.
    """

    def __init__(self, loader: Any, hook: _AutoRegistration) -> None:
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        nesting = self._hook.nesting
        nesting.depth = getattr(nesting, "depth", 0) + 1
        try:
            self._loader.exec_module(module)
        finally:
            nesting.depth -= 1
        self._hook.loaded(module.__name__)


class _AutoRegistration(importlib.abc.MetaPathFinder):
    """Registers FlexiBERT with the Auto classes once ``transformers`` defines them.

    Registering imports the modelling file (torch and ``transformers.modeling_utils``). An Auto
    module is often imported from inside a module that is itself half imported (``modeling_utils``
    imports the quantizers, which import ``configuration_auto``; the modelling file imports
    ``modeling_utils``), where importing the classes would fail; so the hook waits until the
    outermost import of a :data:`WATCHED` module returns, counting the nesting through their loaders
    (per thread: a half-imported module of another thread is guarded by the import system's own locks).
    """

    def __init__(self) -> None:
        self.nesting = threading.local()
        self.pending = False

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not any(name == w or name.startswith(w + ".") for w in WATCHED):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self)
                return spec
        return None

    def loaded(self, name: str) -> None:
        self.pending = self.pending or name in AUTO_MODULES
        if self.pending and self.nesting.depth == 0:
            self.register()

    def register(self) -> None:
        """Register the classes; the hook's work is then done."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        importlib.import_module("flexibert.model").register_auto_classes()


def _install() -> None:
    """Register now if ``transformers`` already defines the Auto classes, else when it does."""
    hook = _AutoRegistration()
    if any(name in sys.modules for name in AUTO_MODULES):
        hook.register()
    else:
        sys.meta_path.insert(0, hook)


_install()

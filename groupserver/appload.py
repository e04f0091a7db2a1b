"""Import a group's WSGI application in the worker (the master never imports application code)."""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Callable
from typing import Any


class AppLoadError(Exception):
    """The application could not be imported or is not callable."""


def prepare_environment(
    chdir: str | None, python_path: list[str], env: dict[str, str], base_dir: str | None
) -> None:
    """Apply a group's chdir, python_path and env before its app is imported."""
    for key, value in env.items():
        os.environ[key] = value
    if chdir:
        target = os.path.join(base_dir or ".", chdir) if base_dir else chdir
        try:
            os.chdir(target)
        except OSError as exc:
            raise AppLoadError(f"chdir {target}: {exc.strerror}") from None
    for entry in reversed(python_path):
        path = os.path.abspath(
            entry if os.path.isabs(entry) else os.path.join(base_dir or ".", entry)
        )
        if path not in sys.path:
            sys.path.insert(0, path)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def load_app(spec: str, base_dir: str | None = None) -> Callable[..., Any]:
    """Load ``package.module:callable`` (default callable ``application``) or a .wsgi/.py script."""
    if spec.endswith((".wsgi", ".py")) or os.sep in spec:
        path = spec if os.path.isabs(spec) else os.path.join(base_dir or os.getcwd(), spec)
        if not os.path.isfile(path):
            raise AppLoadError(f"{spec}: no such WSGI script ({path})")
        namespace = runpy.run_path(path, run_name="_groupserver_wsgi_script")
        app = namespace.get("application")
        if app is None:
            raise AppLoadError(f"{spec}: the script defines no 'application'")
    else:
        module_name, _, attr = spec.partition(":")
        attr = attr or "application"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AppLoadError(f"{spec}: cannot import {module_name}: {exc}") from exc
        app = module
        for part in attr.split("."):
            try:
                app = getattr(app, part)
            except AttributeError:
                raise AppLoadError(f"{spec}: {module_name} has no attribute {attr!r}") from None
    if not callable(app):
        raise AppLoadError(f"{spec}: {app!r} is not callable")
    return app

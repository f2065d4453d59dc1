"""Files that ship inside the installed package, found through :mod:`importlib.resources`.

The top-level ``schemas/`` directory of the checkout is installed as the package
``pipelines.schemas`` (pyproject: ``[tool.setuptools] package-dir``), so the Avro contract
(``schemas/avro``) and the ClickHouse migrations (``schemas/clickhouse``) are found the same way
in a checkout (editable install) and in an installed wheel, whatever the working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pipelines.errors import ConfigError

SCHEMAS_PACKAGE = "pipelines.schemas"


def schemas_dir(*parts: str) -> Path:
    """The directory (or file) ``schemas/<parts…>`` as installed, e.g. ``schemas_dir("avro")``.

    Raises :class:`~pipelines.errors.ConfigError` when ``pipelines.schemas`` is not installed,
    or is installed other than as files on disk (a zip import: migrations and schemas are read
    as files). The path may not exist; callers check what they need.
    """
    try:
        root = files(SCHEMAS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{SCHEMAS_PACKAGE} is not installed (schemas and migrations missing): "
            "reinstall govstream"
        ) from exc
    if not isinstance(root, Path):
        raise ConfigError(f"{SCHEMAS_PACKAGE} is not installed as files on disk ({root!r})")
    return root.joinpath(*parts)

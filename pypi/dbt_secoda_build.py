"""The PEP 517 build backend of pyproject.toml: maturin, honouring its own `compatibility` setting.

maturin's PEP 517 hooks build with `--compatibility off` (a `linux_x86_64` wheel, which PyPI
refuses and pip cannot tell apart from any other Linux) unless the caller passes a compatibility
of their own, so `[tool.maturin] compatibility` is ignored by `pip wheel .`, `pip install .` and
`uv build`. This passes it, unless the caller gave one (`--config-settings build-args=...` or
`MATURIN_PEP517_ARGS`). Everything else is maturin's own hook, unchanged.
"""

import os
import shlex

from maturin import build_editable as _build_editable
from maturin import (  # noqa: F401 (re-exported hooks)
    build_sdist,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)
from maturin import build_wheel as _build_wheel

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: maturin depends on tomli there
    import tomli as tomllib


def _with_compatibility(config_settings):
    settings = dict(config_settings or {})
    given = settings.get("maturin.build-args", settings.get("build-args"))
    if given is None:
        given = os.environ.get("MATURIN_PEP517_ARGS", "")
    args = shlex.split(given) if isinstance(given, str) else list(given)
    if any(a.startswith(("--compatibility", "--manylinux")) for a in args):
        return config_settings
    with open("pyproject.toml", "rb") as file:
        compatibility = tomllib.load(file)["tool"]["maturin"].get("compatibility")
    if not compatibility:
        return config_settings
    settings.pop("build-args", None)
    settings["maturin.build-args"] = [*args, "--compatibility", compatibility]
    return settings


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build_wheel(
        wheel_directory, _with_compatibility(config_settings), metadata_directory
    )


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build_editable(
        wheel_directory, _with_compatibility(config_settings), metadata_directory
    )

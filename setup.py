"""Maps the repository's top-level folders into the one installed package, `lookout`.

The repository keeps `core/`, `collectors/`, `dashboard/`, `static/` and `templates/` at the
top (where a reader looks first); installed, they are `lookout.core`, `lookout.collectors`,
`lookout.dashboard`, `lookout.static` and `lookout.templates`, so nothing named
`dashboard` or `collectors` lands in site-packages (Django projects often have a
`dashboard` app of their own). `lookout` itself is a namespace package: it has no
folder, so no mapping can shadow it. Everything else lives in setup.cfg.
"""
from pathlib import Path

from setuptools import find_packages, setup

CODE = ("core", "collectors", "dashboard")  # folders holding Python packages
DATA = ("static", "templates")  # folders shipped as package data only


def data_files_below(folder: str) -> list[str]:
    """Every file below `folder`, relative to it (package_data globs skip sub-folders)."""
    root = Path(folder)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


packages = [f"lookout.{name}" for name in find_packages(include=[f"{top}*" for top in CODE])]
packages += [f"lookout.{name}" for name in DATA]
setup(
    packages=packages,
    package_dir={f"lookout.{top}": top for top in CODE + DATA},
    package_data={
        "lookout.core": ["store/migrations/*.py", "store/migrations/*.mako",
                         "store/migrations/versions/*.py"],
        **{f"lookout.{name}": data_files_below(name) for name in DATA},
    },
)

"""Only what pyproject.toml cannot say: the component recipes (components/ at the top of the repository)
travel inside the wheel as buildlib/builtin_components, so `distrokit/NAME` names a built-in recipe
wherever distrokit is installed. An editable install or a checkout reads components/ in place."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COMPONENTS = Path(__file__).resolve().parent / "components"


class BuildWithComponents(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "buildlib" / "builtin_components"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(COMPONENTS, target, symlinks=True)


setup(cmdclass={"build_py": BuildWithComponents})

"""Build hook: a wheel carries the repository's one registry file, the top-level `weights.json`,
as `neurcodec/zoo/weights.json` (a checkout reads it in place; see neurcodec.zoo.registry)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REGISTRY = Path(__file__).parent / "weights.json"


class BuildWithRegistry(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the checkout's file
            target = Path(self.build_lib) / "neurcodec" / "zoo" / "weights.json"
            self.mkpath(str(target.parent))
            self.copy_file(str(REGISTRY), str(target))


setup(cmdclass={"build_py": BuildWithRegistry})

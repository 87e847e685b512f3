"""Ships ebert_modelzoo-modelzoo.pth beside the package, in regular and editable installs, so
that Model Zoo's own processes (its `cszoo`) see EBERT registered
(ebert_modelzoo/cerebras/autoregister.py). Everything else is in pyproject.toml."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK = "ebert_modelzoo-modelzoo.pth"


class BuildPyWithHook(build_py):
    def run(self):
        super().run()
        self.copy_file(HOOK, os.path.join(self.build_lib, HOOK))


class EditableWheelWithHook(editable_wheel):
    def _select_strategy(self, *args, **kwargs):
        strategy = super()._select_strategy(*args, **kwargs)

        class WithHook:
            def __enter__(self):
                strategy.__enter__()
                return self

            def __exit__(self, *exc):
                return strategy.__exit__(*exc)

            def __call__(self, wheel, files, mapping):
                strategy(wheel, files, mapping)
                with open(HOOK) as handle:
                    wheel.writestr(HOOK, handle.read())

        return WithHook()


setup(cmdclass={"build_py": BuildPyWithHook, "editable_wheel": EditableWheelWithHook})

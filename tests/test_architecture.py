"""The layer rule of setup.cfg's import-linter contract holds on the package, and the contract catches a breach."""
import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

LINT = Path(sys.executable).parent / 'lint-imports'


def lint(root: Path) -> subprocess.CompletedProcess:
    if not LINT.is_file():
        pytest.fail(f'{LINT}: missing; install the tests extra (pip install -e ".[tests]"), which has import-linter')
    return subprocess.run([str(LINT), '--config', str(root / 'setup.cfg'), '--no-cache'], cwd=root,
                          env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'}, capture_output=True, text=True,
                          timeout=120)


def test_contract_names_every_package():
    """A new package must be placed in a layer: the contract lists exactly the package's subpackages/modules."""
    parser = configparser.ConfigParser()
    parser.read(REPO / 'setup.cfg')
    layers = parser['importlinter:contract:layers']['layers'].split()
    listed = {name for name in layers if name not in (':', '|')}
    present = {p.stem if p.is_file() else p.name for p in (REPO / 'repseg').iterdir()
               if (p.is_dir() and (p / '__init__.py').is_file()) or (p.suffix == '.py' and p.stem != '__init__')}
    assert listed == present


def test_layers_kept():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert '1 kept, 0 broken' in proc.stdout


@pytest.mark.parametrize('line', ['from repseg.benchmark import models  # noqa',
                                  'def helper():\n    from repseg.quantization import pipeline  # noqa\n'])
def test_upward_import_breaks_the_contract(tmp_path, line):
    """The same contract on a copy of the package with one upward import (module level or inside a function)."""
    shutil.copytree(REPO / 'repseg', tmp_path / 'repseg', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(REPO / 'setup.cfg', tmp_path / 'setup.cfg')
    module = tmp_path / 'repseg' / 'models' / 'forms.py'
    module.write_text(module.read_text() + '\n' + line + '\n')
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert '0 kept, 1 broken' in proc.stdout
    assert 'repseg.models.forms -> repseg.' in proc.stdout
